"""Safe extraction of zip and tar archives.

Every member is checked before anything is written: no member may land outside the
target (``../``, absolute paths, drive letters, links pointing out), no device files,
and no decompression bomb (too many members, total declared size over a limit, an
absurd compression ratio). A refused archive raises a ``UserError`` naming the archive
and the member, and writes nothing. An accepted one is extracted into a temporary
folder beside the target and renamed into place, so an interrupted run never leaves
a half-extracted target. Tar members go through tarfile's ``filter="data"`` as well.
"""

from __future__ import annotations

import lzma
import os
import shutil
import stat
import tarfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from minbench.errors import UserError
from minbench.io import atomic_path

GiB = 1024**3


@dataclass(frozen=True)
class Limits:
    """What an archive may hold. The defaults fit the real release (~31k JPEGs, a few GB)."""

    max_total_bytes: int = 64 * GiB
    max_members: int = 500_000
    # JPEGs and PNGs barely compress; text compresses ~10x. A ratio far above that on a
    # big member is a bomb, not a photo collection.
    max_ratio: float = 200.0
    ratio_min_bytes: int = 1024**2  # small members may compress well (e.g. blank masks)


def _unsafe_name(name: str) -> str | None:
    """Why a member name would escape the target, or None when it stays inside."""
    if "\x00" in name:
        return "has a NUL byte in its name"
    norm = name.replace("\\", "/")
    if norm.startswith("/") or (len(norm) > 1 and norm[1] == ":"):
        return "has an absolute path"
    if ".." in PurePosixPath(norm).parts:
        return "would land outside the target ('..' in its path)"
    return None


def _link_escapes(member_name: str, link_target: str, *, hard: bool) -> bool:
    """True when a link stored at ``member_name`` points outside the extraction root."""
    target = link_target.replace("\\", "/")
    if target.startswith("/") or (len(target) > 1 and target[1] == ":"):
        return True
    # A symlink resolves against its own folder, a hard link against the archive root.
    base = [] if hard else list(PurePosixPath(member_name.replace("\\", "/")).parent.parts)
    depth = len(base)
    for part in PurePosixPath(target).parts:
        if part == "..":
            depth -= 1
            if depth < 0:
                return True
        elif part != ".":
            depth += 1
    return False


def _refuse(archive: Path, member: str, why: str) -> UserError:
    return UserError(f"{archive}: member {member!r} {why}; refused, nothing extracted")


def _check_totals(archive: Path, n_members: int, total: int, limits: Limits, target: Path) -> None:
    if n_members > limits.max_members:
        raise UserError(f"{archive}: {n_members} members, more than the limit of {limits.max_members} "
                        "(decompression bomb?); refused, nothing extracted")
    if total > limits.max_total_bytes:
        raise UserError(f"{archive}: members declare {total / GiB:.1f} GiB uncompressed, more than the limit "
                        f"of {limits.max_total_bytes / GiB:.1f} GiB (decompression bomb?); refused, nothing extracted")
    free = shutil.disk_usage(_existing_parent(target)).free
    if total > free:
        raise UserError(f"{archive}: needs {total / GiB:.1f} GiB to extract, only {free / GiB:.1f} GiB free "
                        f"at {target.parent}")


def _existing_parent(path: Path) -> Path:
    path = path.absolute()
    while not path.exists():
        path = path.parent
    return path


def _zip_mode(info: zipfile.ZipInfo) -> int:
    return info.external_attr >> 16 if info.create_system == 3 else 0


def check_zip(archive: Path, zf: zipfile.ZipFile, limits: Limits, target: Path) -> list[zipfile.ZipInfo]:
    """Members of a zip that are safe to extract; a ``UserError`` for the first that is not."""
    infos = zf.infolist()
    total = 0
    for info in infos:
        why = _unsafe_name(info.filename)
        if why:
            raise _refuse(archive, info.filename, why)
        mode = _zip_mode(info)
        if stat.S_ISLNK(mode):
            # zipfile would write a link as a small text file; a release zip holds none, and
            # links inside a zip cannot be checked against links made earlier, so refuse all.
            link = zf.read(info).decode("utf-8", "replace")
            if _link_escapes(info.filename, link, hard=False):
                raise _refuse(archive, info.filename, f"is a symlink pointing outside the target ({link!r})")
            raise _refuse(archive, info.filename, f"is a symlink ({link!r}); links in a zip are not supported")
        elif stat.S_IFMT(mode) not in (0, stat.S_IFREG, stat.S_IFDIR):  # 0: no file type recorded
            raise _refuse(archive, info.filename, "is a device, FIFO or socket")
        if info.file_size >= limits.ratio_min_bytes:
            ratio = info.file_size / max(info.compress_size, 1)
            if ratio > limits.max_ratio:
                raise _refuse(archive, info.filename, f"expands {ratio:.0f}x ({info.file_size} bytes from "
                              f"{info.compress_size}; decompression bomb?)")
        total += info.file_size
    _check_totals(archive, len(infos), total, limits, target)
    return infos


def _extract_zip(archive: Path, dest: Path, limits: Limits, target: Path) -> None:
    with zipfile.ZipFile(archive) as zf:
        infos = check_zip(archive, zf, limits, target)
        for info in infos:
            out = dest / info.filename.replace("\\", "/")
            if info.is_dir():
                out.mkdir(parents=True, exist_ok=True)
                continue
            out.parent.mkdir(parents=True, exist_ok=True)
            # ZipExtFile stops at the declared size and checks the CRC, so a member cannot
            # write more than the totals checked above.
            with zf.open(info) as src, open(out, "wb") as dst:
                shutil.copyfileobj(src, dst, 1024 * 1024)


def check_tar(archive: Path, tf: tarfile.TarFile, limits: Limits, target: Path) -> list[tarfile.TarInfo]:
    """Members of a tar that are safe to extract; a ``UserError`` for the first that is not."""
    members = []
    total = 0
    for m in tf:  # streams the headers; stops a bomb of members before reading them all
        members.append(m)
        if len(members) > limits.max_members:
            _check_totals(archive, len(members), total, limits, target)
        why = _unsafe_name(m.name)
        if why:
            raise _refuse(archive, m.name, why)
        if m.issym() and _link_escapes(m.name, m.linkname, hard=False):
            raise _refuse(archive, m.name, f"is a symlink pointing outside the target ({m.linkname!r})")
        if m.islnk() and (_unsafe_name(m.linkname) or _link_escapes(m.name, m.linkname, hard=True)):
            raise _refuse(archive, m.name, f"is a hard link pointing outside the target ({m.linkname!r})")
        if m.ischr() or m.isblk() or m.isfifo() or m.isdev():
            raise _refuse(archive, m.name, "is a device file or FIFO")
        if not (m.isfile() or m.isdir() or m.issym() or m.islnk()):
            raise _refuse(archive, m.name, f"has an unsupported member type {m.type!r}")
        total += m.size
    _check_totals(archive, len(members), total, limits, target)
    packed = archive.stat().st_size
    if total >= limits.ratio_min_bytes and total / max(packed, 1) > limits.max_ratio:
        raise UserError(f"{archive}: expands {total / max(packed, 1):.0f}x ({total} bytes from {packed}; "
                        "decompression bomb?); refused, nothing extracted")
    return members


def _extract_tar(archive: Path, dest: Path, limits: Limits, target: Path) -> None:
    with tarfile.open(archive) as tf:
        members = check_tar(archive, tf, limits, target)
        try:
            tf.extractall(dest, members=members, filter="data")
        except tarfile.FilterError as exc:  # our checks should have caught it; the filter is the backstop
            name = getattr(getattr(exc, "tarinfo", None), "name", "?")
            raise _refuse(archive, name, f"is refused by tarfile's data filter ({exc})") from None


def extract_archive(archive: str | os.PathLike, target: str | os.PathLike, *,
                    limits: Limits | None = None) -> Path:
    """Extract a zip or tar (optionally gz/bz2/xz) safely into the folder ``target``.

    ``target`` is replaced whole, atomically: it exists afterwards only if every member
    was extracted. Returns ``target``.
    """
    archive, target = Path(archive), Path(target)
    limits = limits or Limits()
    if not archive.is_file():
        raise UserError(f"{archive}: archive not found")
    if zipfile.is_zipfile(archive):
        extract = _extract_zip
    else:
        try:
            is_tar = tarfile.is_tarfile(archive)
        except OSError:
            is_tar = False
        if not is_tar:
            raise UserError(f"{archive}: not a zip or tar archive (damaged or incomplete download?)")
        extract = _extract_tar
    try:
        with atomic_path(target) as tmp:
            tmp.mkdir()
            extract(archive, tmp, limits, target)
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error, lzma.LZMAError) as exc:
        raise UserError(f"{archive}: damaged archive ({type(exc).__name__}: {exc}); nothing extracted") from None
    except OSError as exc:  # disk full, a member that is both a file and a folder, ...
        raise UserError(f"{archive}: extraction failed ({exc}); nothing extracted") from None
    return target
