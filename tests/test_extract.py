"""Safe extraction: hostile members, bombs, damaged archives, atomic replacement."""

from __future__ import annotations

import io
import stat
import tarfile
import zipfile

import pytest

from minbench.data.extract import Limits, extract_archive
from minbench.errors import UserError


def _zip(path, members):
    """members: name -> bytes, or (bytes, unix mode) for links and special files."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            if isinstance(data, tuple):
                data, mode = data
                info = zipfile.ZipInfo(name)
                info.create_system = 3
                info.external_attr = mode << 16
                zf.writestr(info, data)
            else:
                zf.writestr(name, data)
    return path


def _tar(path, members, mode="w"):
    """members: list of TarInfo-building dicts: name, data=b'', type, linkname."""
    with tarfile.open(path, mode) as tf:
        for m in members:
            info = tarfile.TarInfo(m["name"])
            info.type = m.get("type", tarfile.REGTYPE)
            info.linkname = m.get("linkname", "")
            data = m.get("data", b"")
            info.size = len(data) if info.type == tarfile.REGTYPE else 0
            tf.addfile(info, io.BytesIO(data) if info.size else None)
    return path


def _listing(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def test_good_zip_and_tar_extract_intact(tmp_path):
    z = _zip(tmp_path / "a.zip", {"data/1_syst/a.jpg": b"x" * 100, "csv/Кварц.txt": "кварц".encode()})
    out = extract_archive(z, tmp_path / "z")
    assert (out / "data/1_syst/a.jpg").read_bytes() == b"x" * 100
    assert (out / "csv/Кварц.txt").read_text(encoding="utf-8") == "кварц"
    t = _tar(tmp_path / "s.tar", [{"name": "img/a.jpg", "data": b"img"}, {"name": "mask/a.png", "data": b"m"},
                                  {"name": "mask/b.png", "type": tarfile.SYMTYPE, "linkname": "a.png"}])
    out = extract_archive(t, tmp_path / "t")
    assert (out / "img/a.jpg").read_bytes() == b"img" and (out / "mask/b.png").read_bytes() == b"m"


@pytest.mark.parametrize("name, data, message", [
    ("../evil.txt", b"pwned", "outside the target"),
    ("ok/../../evil.txt", b"pwned", "outside the target"),
    ("/tmp/evil_abs.txt", b"pwned", "absolute path"),
    ("C:/evil.txt", b"pwned", "absolute path"),
    ("link", (b"../../outside", stat.S_IFLNK | 0o777), "symlink pointing outside"),
    ("link_in", (b"data/a.jpg", stat.S_IFLNK | 0o777), "links in a zip are not supported"),
])
def test_hostile_zip_is_refused_and_writes_nothing(tmp_path, name, data, message):
    arc = tmp_path / "arc"
    arc.mkdir()
    z = _zip(arc / "evil.zip", {"data/a.jpg": b"fine", name: data})
    target = tmp_path / "work" / "out"
    with pytest.raises(UserError, match=message) as err:
        extract_archive(z, target)
    assert "evil.zip" in str(err.value) and repr(name) in str(err.value)
    assert not target.exists()
    assert _listing(tmp_path) == ["arc", "arc/evil.zip", "work"]


@pytest.mark.parametrize("member, message", [
    ({"name": "../evil.txt", "data": b"x"}, "outside the target"),
    ({"name": "/tmp/evil_abs.txt", "data": b"x"}, "absolute path"),
    ({"name": "img/link", "type": tarfile.SYMTYPE, "linkname": "../../etc/passwd"}, "symlink pointing outside"),
    ({"name": "img/abs", "type": tarfile.SYMTYPE, "linkname": "/etc/passwd"}, "symlink pointing outside"),
    ({"name": "img/hard", "type": tarfile.LNKTYPE, "linkname": "../outside"}, "hard link pointing outside"),
    ({"name": "img/dev", "type": tarfile.CHRTYPE}, "device file"),
    ({"name": "img/fifo", "type": tarfile.FIFOTYPE}, "device file or FIFO"),
])
def test_hostile_tar_is_refused_and_writes_nothing(tmp_path, member, message):
    arc = tmp_path / "arc"
    arc.mkdir()
    t = _tar(arc / "segm.tar", [{"name": "img/a.jpg", "data": b"fine"}, member])
    with pytest.raises(UserError, match=message) as err:
        extract_archive(t, tmp_path / "out")
    assert "segm.tar" in str(err.value) and member["name"] in str(err.value)
    assert _listing(tmp_path) == ["arc", "arc/segm.tar"]


def test_tar_symlink_chain_is_caught_by_the_data_filter(tmp_path):
    # Each link alone looks inside; together a/b resolves above the target.
    t = _tar(tmp_path / "chain.tar", [
        {"name": "a", "type": tarfile.SYMTYPE, "linkname": "."},
        {"name": "a/b", "type": tarfile.SYMTYPE, "linkname": ".."},
        {"name": "a/b/escaped.txt", "data": b"x"},
    ])
    with pytest.raises(UserError, match="chain.tar"):
        extract_archive(t, tmp_path / "out")
    assert _listing(tmp_path) == ["chain.tar"]


def test_zip_bomb_refused_by_ratio_before_extracting(tmp_path):
    z = _zip(tmp_path / "bomb.zip", {"small.txt": b"hi", "zeros.bin": bytes(20 * 1024**2)})
    with pytest.raises(UserError, match=r"zeros\.bin.*expands \d+x"):
        extract_archive(z, tmp_path / "out")
    assert _listing(tmp_path) == ["bomb.zip"]


def test_tar_gz_bomb_refused_by_ratio(tmp_path):
    t = _tar(tmp_path / "bomb.tar.gz", [{"name": "zeros.bin", "data": bytes(8 * 1024**2)}], mode="w:gz")
    with pytest.raises(UserError, match=r"bomb\.tar\.gz.*expands"):
        extract_archive(t, tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("limits, message", [
    (Limits(max_total_bytes=1000), "declare 0.0 GiB uncompressed, more than the limit"),
    (Limits(max_members=2), "3 members, more than the limit of 2"),
])
def test_declared_totals_over_the_limits_are_refused(tmp_path, limits, message):
    z = _zip(tmp_path / "big.zip", {f"f{i}.bin": bytes(600) for i in range(3)})
    with pytest.raises(UserError, match=message):
        extract_archive(z, tmp_path / "out", limits=limits)
    t = _tar(tmp_path / "big.tar", [{"name": f"f{i}.bin", "data": bytes(600)} for i in range(3)])
    with pytest.raises(UserError, match=message):
        extract_archive(t, tmp_path / "out", limits=limits)
    assert not (tmp_path / "out").exists()


def test_damaged_member_midway_leaves_no_partial_extraction(tmp_path):
    z = _zip(tmp_path / "crc.zip", {"a.txt": b"first member is fine", "b.txt": b"B" * 5000})
    raw = bytearray(z.read_bytes())
    with zipfile.ZipFile(z) as zf:
        info = zf.getinfo("b.txt")
        start = info.header_offset + 30 + len(info.filename) + len(info.extra)
    raw[start + 3] ^= 0xFF  # corrupt b.txt's compressed bytes: fails only while extracting
    z.write_bytes(bytes(raw))
    old = tmp_path / "out"
    old.mkdir()
    (old / "previous.txt").write_text("kept")
    with pytest.raises(UserError, match="crc.zip"):
        extract_archive(z, old)
    assert _listing(tmp_path) == ["crc.zip", "out", "out/previous.txt"]


def test_not_an_archive_is_a_user_error(tmp_path):
    bad = tmp_path / "mineral_images.zip"
    bad.write_bytes(b"PK\x03\x04 but then the download stopped")
    with pytest.raises(UserError, match="not a zip or tar archive"):
        extract_archive(bad, tmp_path / "out")
    with pytest.raises(UserError, match="not found"):
        extract_archive(tmp_path / "nope.tar", tmp_path / "out")
