"""The embedded ``synth`` dataset: determinism, recorded truth, schema, split shapes, CLI."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest
from minbench.cli import main
from minbench.data import manifest
from minbench.data.synth import GENERATOR_VERSION, generate
from minbench.data.synth.scene import CUBE_EDGE_CM
from minbench.errors import UserError

FEWSHOT = ("fewshot_10", "fewshot_98", "fewshot_360")


def _hashes(folder) -> dict[str, str]:
    """Every file under ``folder`` (relative path -> sha256), dataset.json included."""
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def df(tiny_dataset):
    return manifest.read_manifest(tiny_dataset)


def test_same_seed_gives_identical_bytes_whatever_the_worker_count(tiny_dataset, tmp_path):
    """Every file of the folder, dataset.json and the Parquet manifest included: no time taken,
    worker count or path is recorded in the dataset (the fixture ran one worker, this a pool)."""
    again = tmp_path / "again"
    generate(again, seed=0, size="tiny", workers=2)
    assert (again / manifest.MANIFEST_FILE).read_bytes() == (tiny_dataset / manifest.MANIFEST_FILE).read_bytes()
    assert (again / manifest.DATASET_FILE).read_bytes() == (tiny_dataset / manifest.DATASET_FILE).read_bytes()
    ours = _hashes(again)
    assert {"dataset.json", "manifest.parquet"} < set(ours) and len(ours) > 2 * manifest.read_info(again).n_samples
    assert ours == _hashes(tiny_dataset)
    assert sorted(p.name for p in again.rglob("*") if p.is_dir()) == ["images", "masks"]
    other = tmp_path / "other"
    generate(other, seed=1, size="tiny", workers=1)
    assert manifest.read_info(other).fingerprint != manifest.read_info(tiny_dataset).fingerprint


def test_manifest_validates_and_records_the_generator(tiny_dataset, df):
    assert manifest.validate(df) == []
    info = manifest.read_info(tiny_dataset)
    assert (info.name, info.source, info.version) == ("synth", "synth", GENERATOR_VERSION)
    assert info.extra["seed"] == 0 and info.extra["size"] == "tiny"
    assert info.extra["cube_edge_cm"] == CUBE_EDGE_CM
    assert info.n_samples == len(df) >= 60
    assert (df["source"] == "synth").all() and (df["species"] != "").all()
    assert (df["description"].str.len() > 40).all()
    assert ((df["width"] == 256) & (df["height"] == 192)).all()
    for p in df["image_path"]:
        assert (tiny_dataset / p).is_file()


def test_mask_is_the_crystals_inside_the_specimen_box(tiny_dataset, df):
    gaps = []
    for _, row in df.iterrows():
        mask = cv2.imread(str(tiny_dataset / row["mask_path"]), cv2.IMREAD_UNCHANGED)
        img = cv2.imread(str(tiny_dataset / row["image_path"]))
        assert mask.dtype == np.uint8 and mask.shape == (row["height"], row["width"])
        assert set(np.unique(mask)) <= {0, 255}
        assert (mask > 0).sum() > 0, row["sample_id"]
        x1, y1, x2, y2 = (int(v) for v in manifest.parse_box(row["bbox"]))
        inside = np.zeros_like(mask, bool)
        inside[y1:y2, x1:x2] = True
        assert not ((mask > 0) & ~inside).any(), row["sample_id"]
        # The masked pixels look like something other than the backdrop far from the specimen.
        background = ~inside
        for box in [manifest.parse_box(row["cube_bbox"]) or (0, 0, 0, 0)] + json.loads(row["text_boxes"] or "[]"):
            bx1, by1, bx2, by2 = (int(v) for v in box)
            background[max(0, by1 - 3):by2 + 3, max(0, bx1 - 3):bx2 + 3] = False
        gaps.append(np.linalg.norm(img[mask > 0].mean(0) - img[background].mean(0)))
    assert np.median(gaps) > 30


def test_size_truth_is_a_3d_measurement_not_the_box_the_photo_shows(df):
    from minbench.data.synth.scene import SIZE_ROUND_CM

    assert ((df["size_cm"] / SIZE_ROUND_CM).round(6) % 1 == 0).all()   # recorded to the millimetre
    assert df["size_cm"].between(1.4, 25.1).all()
    box = df["bbox"].map(manifest.parse_box)
    from_box = box.map(lambda b: max(b[2] - b[0], b[3] - b[1])) / df["px_per_cm"]
    ratio = from_box / df["size_cm"]
    # The box misses the depth and the specimen's own distance: mostly short, never wildly off.
    assert (abs(ratio - 1) > 0.01).mean() > 0.8
    assert ratio.between(0.35, 1.6).all() and ratio.median() < 1


def test_cube_box_matches_the_scale_and_mostly_sits_beside_the_specimen(df):
    ok, apart, with_cube = 0, 0, 0
    for _, row in df.iterrows():
        cube = manifest.parse_box(row["cube_bbox"])
        if cube is None:   # some photos have no cube
            continue
        with_cube += 1
        cx1, cy1, cx2, cy2 = cube
        assert 0 <= cx1 < cx2 <= row["width"] and 0 <= cy1 < cy2 <= row["height"]
        edge_px = CUBE_EDGE_CM * row["px_per_cm"]
        # Yaw 25-65 and pitch 20-40 degrees show three faces, 1.30-1.68 edges wide and 1.19-1.78
        # tall under a 20-40 degree lens; a cube cut by the frame is narrower.
        ok += 1.28 < (cx2 - cx1) / edge_px < 1.70 and 1.15 < (cy2 - cy1) / edge_px < 1.80
        x1, y1, x2, y2 = manifest.parse_box(row["bbox"])
        apart += cx2 <= x1 or x2 <= cx1 or cy2 <= y1 or y2 <= cy1
        for tx1, ty1, tx2, ty2 in json.loads(row["text_boxes"] or "[]"):
            assert tx2 <= x1 or x2 <= tx1 or ty2 <= y1 or y2 <= ty1, "label overlaps the specimen"
    assert ok >= 0.85 * with_cube and apart >= 0.85 * with_cube and with_cube >= 0.85 * len(df)


def test_fewshot_subsets_are_nested_stratified_and_frequency_ordered(tiny_dataset, df):
    info = manifest.read_info(tiny_dataset)
    classes = [set(df.loc[df[c] != "", "species"]) for c in FEWSHOT]
    assert classes[0] < classes[1] < classes[2]
    assert [len(c) for c in classes] == [info.extra["classes"][c] for c in FEWSHOT]
    for col in FEWSHOT:
        sub = df[df[col] != ""]
        train = set(sub.loc[sub[col] == "train", "species"])
        test = set(sub.loc[sub[col] == "test", "species"])
        assert test and test <= train, col
    # A row keeps one role in every subset that holds it.
    roles = df[list(FEWSHOT)].apply(lambda r: {v for v in r if v}, axis=1)
    assert (roles.map(len) <= 1).all()
    counts = df[df["fewshot_360"] != ""].groupby("species").size()
    assert counts[list(classes[0])].min() >= counts[list(classes[2] - classes[1])].max()


def test_zeroshot_classes_are_never_seen_in_fewshot_photos(tiny_dataset, df):
    info = manifest.read_info(tiny_dataset)
    zs = df[df["zeroshot"]]
    fewshot_rows = df[(df[list(FEWSHOT)] != "").any(axis=1)]
    assert len(zs) and len(set(zs["species"])) == info.extra["classes"]["zeroshot"]
    assert not set(zs["species"]) & set(fewshot_rows["species"])
    assert len(fewshot_rows) + len(zs) == len(df)
    held = set(info.extra["held_out_species"])
    assert held
    sat = {s.strip() for text in fewshot_rows["satellites"] for s in text.split(",") if s.strip()}
    assert not sat & held


def test_segmentation_and_size_sets(df):
    seg = df[df["segmentation"]]
    assert 5 <= len(seg) and (seg["fewshot_360"] == "test").all() and (seg["mask_path"] != "").all()
    assert seg["species"].nunique() >= 3
    # The fewshot-10 classes' test rows come first (the default CAM classifier knows them).
    f10_test = df[df["fewshot_10"] == "test"]
    assert set(f10_test["sample_id"]) <= set(seg["sample_id"]) or set(seg["sample_id"]) <= set(f10_test["sample_id"])
    size = df[df["size"]]
    assert len(size) >= 10 and (size["size_cm"] > 0).all()


def test_cli_generates_then_the_manifest_reads_back(tmp_path, capsys):
    out = tmp_path / "data"
    assert main(["data", "generate", "--size", "tiny", "--out", str(out), "--seed", "3"]) == 0
    assert "images/s" in capsys.readouterr().err  # a notice: stderr
    df = manifest.read_manifest(out)
    assert len(df) == manifest.read_info(out).n_samples
    # Generating again replaces the dataset whole.
    assert main(["data", "generate", "--size", "tiny", "--out", str(out), "--seed", "3"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]


def test_refuses_to_replace_a_folder_that_is_not_a_synth_dataset(tmp_path, capsys):
    precious = tmp_path / "notes"
    precious.mkdir()
    (precious / "thesis.txt").write_text("keep me")
    assert main(["data", "generate", "--size", "tiny", "--out", str(precious)]) == 2
    err = capsys.readouterr().err
    assert "refusing to replace" in err and len(err.strip().splitlines()) == 1
    assert (precious / "thesis.txt").read_text() == "keep me"


def test_an_interrupted_run_leaves_no_dataset_behind(tmp_path, monkeypatch):
    from minbench.data.synth import driver as gen_mod

    real = gen_mod.render_sample
    calls = []

    def flaky(task):
        calls.append(task)
        if len(calls) > 5:
            raise KeyboardInterrupt
        return real(task)

    monkeypatch.setattr(gen_mod, "render_sample", flaky)
    with pytest.raises(KeyboardInterrupt):
        generate(tmp_path / "data", size="tiny", workers=1)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("kwargs, message", [
    ({"size": "huge"}, "--size 'huge'"),
    ({"size": "tiny", "workers": 0}, "--workers 0"),
    ({"size": "tiny", "workers": 1.5}, "--workers 1.5"),
    ({"size": "tiny", "seed": -1}, "--seed -1: out of range"),
    ({"size": "tiny", "seed": 2**32}, "--seed 4294967296: out of range"),
    ({"size": "tiny", "seed": 1.5}, "--seed 1.5: must be an integer"),
    ({"size": "tiny", "seed": "3"}, "--seed '3': must be an integer"),
    ({"size": "tiny", "seed": True}, "--seed True: must be an integer"),
])
def test_bad_arguments_are_user_errors(tmp_path, kwargs, message):
    with pytest.raises(UserError, match=message):
        generate(tmp_path / "x", **kwargs)
    assert list(tmp_path.iterdir()) == []  # refused before anything was written


def test_the_largest_seed_is_taken():
    from minbench.data.synth import SEED_LIMIT, check_seed

    assert check_seed(np.int64(SEED_LIMIT - 1)) == SEED_LIMIT - 1 and check_seed(0) == 0


@pytest.mark.parametrize("argv, message", [
    (["--size", "huge"], "argument --size: invalid choice: 'huge'"),
    (["--seed", "-1"], "argument --seed: -1 is out of range (0 <= seed < 2**32)"),
    (["--seed", str(2**32)], "argument --seed: 4294967296 is out of range"),
    (["--seed", "1.5"], "argument --seed: '1.5' is not an integer"),
    (["--workers", "0"], "argument --workers: '0' is not a whole number of at least 1"),
])
def test_cli_bad_size_seed_or_workers_is_one_line_exit_2_before_any_work(argv, message, tmp_path, capsys, monkeypatch):
    from minbench.data.synth import driver

    monkeypatch.setattr(driver, "generate", _must_not_run)
    with pytest.raises(SystemExit) as exc:  # argparse's own exit, through minbench's one-line parser
        main(["data", "generate", *argv])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def _must_not_run(*args, **kwargs):
    raise AssertionError("the generator ran on bad input")


def _count_renders(monkeypatch):
    from minbench.data.synth import driver

    calls = []
    real = driver.render_sample

    def counting(task):
        calls.append(task[1])
        return real(task)

    monkeypatch.setattr(driver, "render_sample", counting)
    return calls


def _one_error_line(capsys) -> str:
    """The one error line; before it at most a progress line, which says it stopped."""
    lines = capsys.readouterr().err.strip().splitlines()
    errors = [line for line in lines if line.startswith("minbench: error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0] and "Traceback" not in "\n".join(lines), lines
    assert all(line.endswith(" · stopped") for line in lines[:-1]), lines
    return errors[0]


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_out_or_cache_is_named_before_rendering(tmp_path, capsys, monkeypatch):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    calls = _count_renders(monkeypatch)
    try:
        assert main(["data", "generate", "--size", "tiny", "--out", str(ro / "data")]) == 2
        err = _one_error_line(capsys)
        assert f"{ro}: cannot write the dataset data there (Permission denied)" in err and "--out" in err
        monkeypatch.setenv("MINBENCH_HOME", str(ro / "home"))  # the cache's default folder, not makeable
        assert main(["data", "generate", "--size", "tiny"]) == 2
        assert f"{ro / 'home' / 'datasets'}: cannot write the dataset synth-tiny" in _one_error_line(capsys)
        assert calls == [] and list(ro.iterdir()) == []
    finally:
        ro.chmod(0o755)


def test_a_read_only_file_system_is_named_before_rendering(tmp_path, capsys, monkeypatch):
    """What the test above shows, for root too: the folder refuses the first file made in it."""
    import tempfile

    real = tempfile.mkstemp
    ro = tmp_path / "ro"
    ro.mkdir()

    def read_only(*args, dir=None, **kwargs):
        if dir is not None and Path(dir) == ro:
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(Path(dir) / ".probe"))
        return real(*args, dir=dir, **kwargs)

    monkeypatch.setattr(tempfile, "mkstemp", read_only)
    calls = _count_renders(monkeypatch)
    assert main(["data", "generate", "--size", "tiny", "--out", str(ro / "data")]) == 2
    err = _one_error_line(capsys)
    assert f"{ro}: cannot write the dataset data there (Read-only file system)" in err
    assert calls == [] and list(ro.iterdir()) == []


def _disk_full_while_rendering(monkeypatch):
    from minbench.data.synth import driver

    real = driver.render_sample
    done = []

    def fills_the_disk(task):
        if len(done) == 5:  # the sixth image's write finds the disk full
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), f"{task[-1]}/images/x.jpg")
        done.append(task[1])
        return real(task)

    monkeypatch.setattr(driver, "render_sample", fills_the_disk)


def _disk_full_writing_the_manifest(monkeypatch):
    import pandas as pd

    def fills_the_disk(self, path, *args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr(pd.DataFrame, "to_parquet", fills_the_disk)


@pytest.mark.parametrize("fill", [_disk_full_while_rendering, _disk_full_writing_the_manifest])
def test_a_full_disk_mid_generation_is_one_line_and_leaves_the_old_dataset(fill, tiny_dataset, tmp_path, capsys,
                                                                           monkeypatch):
    out = tmp_path / "data"
    shutil.copytree(tiny_dataset, out)  # a dataset made before; a failed regeneration keeps it
    before = _hashes(out)
    fill(monkeypatch)
    assert main(["data", "generate", "--size", "tiny", "--out", str(out), "--workers", "1"]) == 2
    err = _one_error_line(capsys)
    assert (f"{tmp_path}: cannot write the dataset data there (No space left on device); free some space, "
            "or choose another folder") in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]  # the temporary folder is gone
    assert _hashes(out) == before


def test_generating_into_out_removes_what_a_killed_generation_left_beside_it(tmp_path, monkeypatch):
    from minbench.data.synth import driver

    dead = subprocess.Popen(["true"])
    dead.wait()
    left = tmp_path / f".data.{dead.pid}.k1ll3d.tmp"      # a SIGKILLed generation's temporary
    (left / "images").mkdir(parents=True)
    live = tmp_path / f".data.{os.getpid()}.busy.tmp"     # a running one's: not ours to touch
    live.mkdir()

    def interrupted(task):
        raise KeyboardInterrupt

    monkeypatch.setattr(driver, "render_sample", interrupted)
    with pytest.raises(KeyboardInterrupt):
        driver.generate(tmp_path / "data", size="tiny", workers=1)
    assert sorted(p.name for p in tmp_path.iterdir()) == [live.name]


def test_an_interrupted_first_use_is_never_taken_and_the_next_one_regenerates(tiny_dataset, monkeypatch):
    """The embedded dataset as ``run`` finds it: interrupt its generation (and fake what a
    killed one leaves: a temporary folder, a replaced copy, a folder without its
    dataset.json); the next lookup ignores all that and generates the same bytes."""
    from minbench.data import locate
    from minbench.data.synth import driver

    monkeypatch.setattr(locate, "DEFAULT_SYNTH_SIZE", "tiny")  # what `run` uses, made small
    folder = locate.embedded_dir()
    real = driver.render_sample
    done = []

    def interrupted(task):
        if len(done) == 5:
            raise KeyboardInterrupt
        done.append(task[1])
        return real(task)

    monkeypatch.setattr(driver, "render_sample", interrupted)
    with pytest.raises(KeyboardInterrupt):
        locate.resolve_dataset(None)
    assert not folder.exists() and [p.name for p in folder.parent.iterdir()] == [f".{folder.name}.lock"]
    monkeypatch.setattr(driver, "render_sample", real)

    # what a SIGKILL or a power cut could leave, and a folder a manifest-only lookup would take
    leftover = folder.parent / f".{folder.name}.k1ll3d.tmp"
    (leftover / "images").mkdir(parents=True)
    (leftover / "images" / "synth_000000.jpg").write_bytes(b"half")
    (folder.parent / f".{folder.name}.old-4242").mkdir()
    folder.mkdir()
    shutil.copy(tiny_dataset / manifest.MANIFEST_FILE, folder / manifest.MANIFEST_FILE)
    assert not locate.is_dataset(folder)
    with pytest.raises(UserError, match="not generated yet"):
        locate.resolve_dataset(None, generate_if_missing=False)

    assert locate.resolve_dataset(None) == folder
    assert locate.is_dataset(folder) and _hashes(folder) == _hashes(tiny_dataset)
    assert sorted(p.name for p in folder.parent.iterdir()) == sorted([f".{folder.name}.lock", folder.name])
    calls = _count_renders(monkeypatch)
    assert locate.resolve_dataset(None) == folder and calls == []  # complete: taken as it is


def test_embedded_generation_checks_its_arguments_before_any_work(monkeypatch):
    from minbench.data import locate
    from minbench.paths import cache_dir

    with pytest.raises(UserError, match="--size 'huge'"):
        locate.generate_embedded("huge")
    with pytest.raises(UserError, match="--seed -3"):
        locate.generate_embedded("tiny", -3)
    assert not (cache_dir() / "datasets").exists()
