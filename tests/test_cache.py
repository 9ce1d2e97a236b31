"""The decoded-image cache: built once, keyed by manifest and size, safe to share and to interrupt."""

from __future__ import annotations

import errno
import multiprocessing
import os

import numpy as np
import pytest

from minbench.data import cache as cache_mod
from minbench.data import manifest
from minbench.data.cache import READY, SKIPPED, TODO, ImageCache
from minbench.data.decode import load_rgb, resize_square
from minbench.errors import UserError
from test_datamodule import make_dataset


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("cache_ds"), train=3, test=2, bad={2: "garbage"})


def _cache(data, root, size=24, **kw):
    return ImageCache(data, manifest.read_manifest(data), size, root=root, **kw)


def test_build_once_then_read_back_the_decoded_pixels(dataset, tmp_path):
    c = _cache(dataset, tmp_path)
    n = c.n
    assert c.ensure(range(n)) == n
    assert (c.status == READY).sum() == n - 1 and c.status[2] == SKIPPED
    expected = resize_square(load_rgb(dataset / "img/005.jpg", draft=24)[0], 24)
    assert np.array_equal(c.read_image(5), expected)
    assert c.orig_hw[5].tolist() == [48, 64]
    mask = c.read_mask(0)
    assert mask.shape == (24, 24) and set(np.unique(mask)) == {0, 1}
    # a second cache object on the same manifest and size decodes nothing
    again = _cache(dataset, tmp_path)
    assert again.folder == c.folder and again.ensure(range(n)) == 0
    assert np.array_equal(again.read_image(5), expected)
    report = (c.folder / "skipped.csv").read_text()
    assert "img/002.jpg" in report and "s002" in report


def test_key_changes_with_size_and_manifest(dataset, tmp_path):
    frame = manifest.read_manifest(dataset)
    a = ImageCache(dataset, frame, 24, root=tmp_path)
    b = ImageCache(dataset, frame, 32, root=tmp_path)
    changed = frame.copy()
    changed.loc[0, "species"] = "galena"
    c = ImageCache(dataset, changed, 24, root=tmp_path)
    assert len({a.folder, b.folder, c.folder}) == 3


def test_rows_are_built_on_demand(dataset, tmp_path):
    c = _cache(dataset, tmp_path)
    assert c.ensure([4, 6]) == 2
    assert c.status[[4, 6]].tolist() == [READY, READY] and (c.status == TODO).sum() == c.n - 2
    assert c.ensure([4, 6, 8]) == 1


def test_interrupted_build_is_never_taken_for_a_whole_one(dataset, tmp_path, monkeypatch):
    monkeypatch.setattr(cache_mod, "_CHUNK", 4)
    real = cache_mod._build_one
    calls = []

    def dies_on_the_sixth(job):
        calls.append(job[0])
        if len(calls) == 6:
            raise KeyboardInterrupt  # the process is stopped mid-chunk
        return real(job)

    monkeypatch.setattr(cache_mod, "_build_one", dies_on_the_sixth)
    c = _cache(dataset, tmp_path)
    with pytest.raises(KeyboardInterrupt):
        c.ensure(range(c.n))
    monkeypatch.setattr(cache_mod, "_build_one", real)
    fresh = _cache(dataset, tmp_path)
    # only the first chunk was committed; row 4 was decoded but its chunk never was
    assert (fresh.status != TODO).sum() == 4 and fresh.status[4] == TODO
    assert fresh.ensure(range(c.n)) == c.n - 4
    whole = _cache(dataset, tmp_path / "other")
    whole.ensure(range(c.n))
    for pos in range(c.n):
        if whole.status[pos] == READY:
            assert np.array_equal(fresh.read_image(pos), whole.read_image(pos))


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_cache_is_named_in_one_line_and_a_built_one_still_reads(dataset, tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    built = _cache(dataset, tmp_path / "built")
    built.ensure(range(built.n))
    ro.chmod(0o555)
    built.folder.chmod(0o555)
    try:
        c = _cache(dataset, ro)
        with pytest.raises(UserError) as exc:
            c.ensure(range(c.n))
        message = str(exc.value)
        assert message.startswith(f"{c.folder}: cannot write the decoded-image cache there (Permission denied")
        assert "MINBENCH_HOME" in message and "\n" not in message
        again = _cache(dataset, tmp_path / "built")  # nothing left to decode: reading needs no writes
        assert again.ensure(range(c.n)) == 0 and again.read_image(5).shape == (24, 24, 3)
    finally:
        ro.chmod(0o755)
        built.folder.chmod(0o755)


def test_a_read_only_file_system_is_named_before_decoding(dataset, tmp_path, monkeypatch):
    """The test above, for root too: the store's lock file cannot be made."""
    def read_only(path):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))

    monkeypatch.setattr(cache_mod, "file_lock", read_only)
    monkeypatch.setattr(cache_mod, "_build_one", lambda job: pytest.fail("decoded into a read-only cache"))
    c = _cache(dataset, tmp_path)
    with pytest.raises(UserError, match=r"cannot write the decoded-image cache there \(Read-only file system\)"):
        c.ensure(range(c.n))


def test_a_full_disk_mid_build_is_one_line_and_the_next_build_finishes(dataset, tmp_path, monkeypatch):
    monkeypatch.setattr(cache_mod, "_CHUNK", 4)
    real = os.pwrite
    writes = []

    def fills_up(fd, data, offset):
        if len(writes) == 6:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        writes.append(offset)
        return real(fd, data, offset)

    monkeypatch.setattr(os, "pwrite", fills_up)
    c = _cache(dataset, tmp_path)
    with pytest.raises(UserError) as exc:
        c.ensure(range(c.n))
    monkeypatch.setattr(os, "pwrite", real)
    assert str(exc.value) == (f"{c.folder}: cannot write the decoded-image cache there (No space left on device); "
                              "free some space, or point MINBENCH_HOME (or the data module's cache_dir) at "
                              "another folder")
    fresh = _cache(dataset, tmp_path)
    done = int((fresh.status != TODO).sum())
    assert 0 < done < c.n  # the chunks committed before the disk filled stay usable
    assert fresh.ensure(range(c.n)) == c.n - done
    whole = _cache(dataset, tmp_path / "other")
    whole.ensure(range(c.n))
    assert np.array_equal(fresh.status, whole.status)
    for pos in np.flatnonzero(whole.status == READY):
        assert np.array_equal(fresh.read_image(pos), whole.read_image(pos))


def test_damaged_store_is_rebuilt(dataset, tmp_path):
    c = _cache(dataset, tmp_path)
    c.ensure(range(c.n))
    c.close()
    with open(c.image_file, "r+b") as f:   # e.g. a disk-full copy cut the file short
        f.truncate(10)
    again = _cache(dataset, tmp_path)
    assert (again.status == TODO).all()
    assert again.ensure(range(c.n)) == c.n
    assert np.array_equal(again.read_image(5), resize_square(load_rgb(dataset / "img/005.jpg", draft=24)[0], 24))


def test_two_processes_building_at_once_decode_each_image_once(dataset, tmp_path):
    ctx = multiprocessing.get_context("spawn")
    caches = [_cache(dataset, tmp_path) for _ in range(2)]   # both see an empty store
    with ctx.Pool(2) as pool:   # children import only minbench.data.cache, not this test module
        built = pool.starmap(ImageCache.ensure, [(c, list(range(c.n))) for c in caches])
    c = _cache(dataset, tmp_path)
    assert sorted(built) == [0, c.n] and (c.status == TODO).sum() == 0


def test_parallel_build_equals_serial_build(dataset, tmp_path):
    serial = _cache(dataset, tmp_path / "a")
    serial.ensure(range(serial.n))
    par = _cache(dataset, tmp_path / "b")
    par.ensure(range(par.n), workers=2)
    assert np.array_equal(serial.status, par.status) and np.array_equal(serial.orig_hw, par.orig_hw)
    for pos in np.flatnonzero(serial.status == READY):
        assert np.array_equal(serial.read_image(pos), par.read_image(pos))


def test_native_probe_keeps_only_the_index(dataset, tmp_path):
    c = _cache(dataset, tmp_path, size=None)
    c.ensure(range(c.n))
    assert c.status[2] == SKIPPED and c.orig_hw[5].tolist() == [48, 64]
    assert not list(c.folder.glob("*.u8"))
