"""Where the release's files are: CSVs, the image root, the segmentation folder.

The photos are never copied. An unpacked folder is linked into the output folder
(``out/raw/mineral_images -> <folder>``, ``out/raw/segm -> <folder>``); an archive is
safely extracted there once (a stamp file records which archive, so re-runs skip it).
Manifest paths go through ``raw/`` and so resolve against the output folder.
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from minbench.data.extract import extract_archive
from minbench.data.photo import ImageInfo
from minbench.errors import UserError
from minbench.io import read_json, write_json_atomic

IMAGES_ZIP = "mineral_images.zip"
SEGM_TAR = "segm.tar"
EXTRACTED_STAMP = ".minbench-extracted.json"
_NOWHERE = Path("/nonexistent")


@dataclass
class SampleRecord:
    """One unique sample of minerals_full.csv on its way to the manifest: where its photo
    (and mask) are."""

    i: int  # row index in the CSV data
    sample_id: str
    rel: str | None  # normalised CSV path (None when unusable)
    raw_path: str
    collection: str
    info: ImageInfo | None = None
    image_path: str = ""
    mask_path: str = ""


def norm_path(raw: str) -> str | None:
    """A CSV image path as a clean relative POSIX path; None when it is unusable or unsafe.

    Paths from the authors' machines (``C:\\...\\mineral_images\\data\\2_mest\\...``) are
    cut to their ``data/...`` part.
    """
    p = raw.strip().replace("\\", "/")
    parts = [x for x in p.split("/") if x not in ("", ".")]
    if "data" in parts[:-1]:
        parts = parts[parts.index("data"):]
    elif p.startswith("/") or (parts and re.fullmatch(r"[A-Za-z]:", parts[0])):
        return None
    if not parts or ".." in parts:
        return None
    return "/".join(parts)


def collection_of(rel: str) -> str:
    """``data/2_mest/2_27312/x.JPG`` -> ``2_mest``."""
    parts = rel.split("/")
    if parts[0] == "data" and len(parts) > 2:
        return parts[1]
    return parts[0] if len(parts) > 1 else ""


def find_file(source: Path, name: str) -> Path | None:
    """``source/name``, else the first ``source/*/name``."""
    if (source / name).is_file():
        return source / name
    for sub in sorted(p for p in source.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if (sub / name).is_file():
            return sub / name
    return None


def _subdirs(root: Path, depth: int, exclude: Path) -> list[Path]:
    """``root`` and its folders down to ``depth`` levels, skipping hidden ones and ``exclude``."""
    found, level = [root], [root]
    for _ in range(depth):
        nxt = []
        for d in level:
            try:
                children = sorted(c for c in d.iterdir() if c.is_dir() and not c.name.startswith("."))
            except OSError:
                continue
            nxt += [c for c in children if c.resolve() != exclude]
        found += nxt
        level = nxt
    return found


def file_index(root: Path) -> dict[str, str]:
    """Every file under ``root``: its relative path, and that path lower-cased, -> relative path.

    One walk instead of 45k stat calls, and ``.JPG`` in the CSV still finds ``.jpg``.
    """
    index: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        rel_dir = os.path.relpath(dirpath, root).replace(os.sep, "/")
        for name in filenames:
            rel = name if rel_dir == "." else f"{rel_dir}/{name}"
            index[rel] = rel
            index.setdefault(rel.lower(), rel)
    return index


def _stamp_of(link: Path) -> Path:
    return link.parent / f"{link.name}{EXTRACTED_STAMP}"


def _link(link: Path, target: Path) -> None:
    """Point the symlink ``link`` at ``target``, replacing an older link or our own extraction."""
    link.parent.mkdir(parents=True, exist_ok=True)
    if link.is_symlink():
        if Path(os.readlink(link)) == target:
            return
    elif link.exists():
        if not _stamp_of(link).is_file():
            raise UserError(f"{link}: exists and was not made by minbench; move it away or pick another --out")
        shutil.rmtree(link)
        _stamp_of(link).unlink()
    tmp = link.with_name(f".{link.name}.link-{os.getpid()}")
    if tmp.is_symlink():
        tmp.unlink()
    os.symlink(target, tmp, target_is_directory=True)
    os.replace(tmp, link)


def _extract_once(archive: Path, target: Path) -> None:
    """Extract ``archive`` into ``target`` unless this same archive is already extracted there."""
    st = archive.stat()
    stamp = {"archive": str(archive.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns}
    if target.is_dir() and not target.is_symlink() and _stamp_of(target).is_file():
        try:
            if read_json(_stamp_of(target), "extraction stamp") == stamp:
                return
        except UserError:  # a damaged stamp: extract again
            pass
    if target.is_symlink():
        target.unlink()
    extract_archive(archive, target)
    write_json_atomic(_stamp_of(target), stamp)


def resolve_images(source: Path, out: Path, probe: list[str], full_name: str, warnings: list[str]) -> Path:
    """The folder the CSV's image paths (``probe``: a sample of them) are relative to:
    unpacked under ``source``, else extracted from ``mineral_images.zip`` into ``out/raw``."""
    def best_root(folders: list[Path]) -> Path | None:
        scored = [(sum((d / p).is_file() for p in probe), -i, d) for i, d in enumerate(folders)]
        hits, _, d = max(scored, key=lambda s: s[:2])
        return d if hits else None

    example = probe[0] if probe else "?"
    root = best_root(_subdirs(source, 2, out.resolve()))
    archive = find_file(source, IMAGES_ZIP)
    if root is not None:
        if archive is not None:
            warnings.append(f"{archive}: ignored, the unpacked images under {root} are used")
        return root
    if archive is None:
        raise UserError(f"--source {source}: none of the images {full_name} names is there "
                        f"(e.g. {example}) and there is no {IMAGES_ZIP}")
    target = out / "raw" / "mineral_images"
    _extract_once(archive, target)
    root = best_root(_subdirs(target, 2, _NOWHERE))
    if root is None:
        raise UserError(f"{archive}: holds none of the images {full_name} names (e.g. {example})")
    return root


def _segm_root_in(folder: Path) -> Path | None:
    return next((d for d in _subdirs(folder, 2, _NOWHERE) if (d / "img").is_dir() and (d / "mask").is_dir()), None)


def resolve_segm(source: Path, out: Path, warnings: list[str]) -> Path | None:
    """The folder holding ``img/`` and ``mask/`` (unpacked ``segm/``, else from ``segm.tar``)."""
    if (source / "segm").is_dir() and (root := _segm_root_in(source / "segm")) is not None:
        return root
    archive = find_file(source, SEGM_TAR)
    if archive is None:
        warnings.append(f"--source {source}: no segm/ folder and no {SEGM_TAR}; the segmentation set is empty")
        return None
    target = out / "raw" / "segm"
    _extract_once(archive, target)
    root = _segm_root_in(target)
    if root is None:
        warnings.append(f"{archive}: has no img/ and mask/ folders; the segmentation set is empty")
    return root


def prefix_in(out: Path, root: Path, link_name: str) -> str:
    """Path prefix ('' or ending in '/') from ``out`` to ``root``: as is when ``root`` is
    inside ``out``, else through the symlink ``out/raw/<link_name>``."""
    try:
        rel = root.resolve().relative_to(out.resolve()).as_posix()
    except ValueError:
        _link(out / "raw" / link_name, root.resolve())
        rel = f"raw/{link_name}"
    return "" if rel == "." else f"{rel}/"
