"""The real MineralImage5k release -> the canonical manifest (``minbench data prepare``).

``source`` is the unpacked release (``data/<collection>/...`` images, the CSVs,
``segm/img`` + ``segm/mask``) or a folder holding ``mineral_images.zip`` and
``segm.tar`` beside the CSVs. The output folder gets:

- ``raw/mineral_images`` and ``raw/segm``: a symlink to the unpacked source folder, or
  the archive safely extracted there (once; re-runs reuse it). The ~31k photos are
  never copied: manifest paths go through ``raw/`` and resolve against the output folder.
- ``masks/<sample_id>.png``: the segmentation masks, binarised (255 = mineral) at
  the size of the row's image.
- ``manifest.parquet`` + ``dataset.json``, ``missing_images.csv`` (rows left out for
  want of a readable image, with the collection), ``prepare_report.json``.

Decisions (also recorded in ``dataset.json``):

- Splits: a split CSV with a split column (``split``/``subset``/``is_test``...) is
  followed (``val`` rows join train); otherwise each subset's rows get a seeded,
  stratified 80/20 train/test split: within each species, the 20% of samples with the
  smallest ``sha256(seed:sample_id)`` are test. It depends only on the ids, not on row
  order, and a class with one image stays in train.
- Zero-shot: the paper evaluates zero-shot on all 5,139 classes, but a model trained
  on a few-shot subset has seen those classes. The benchmark's zero-shot set is every
  row with an image whose species is in no few-shot subset (train or test), so it is
  disjoint from every class a baseline trains on.
- Orientation: width/height are the displayed size (EXIF orientation applied), and
  ``bbox``/``text_boxes`` are in that displayed frame; loaders must apply the EXIF
  orientation (PIL ``ImageOps.exif_transpose``; ``cv2.imread`` does by default).
  ``mineral_boxes`` is kept as the release gives it (normalised, file frame).
"""

from __future__ import annotations

import ast
import hashlib
import json
import math
import os
import re
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from minbench.data import csv_schema as cs
from minbench.data import manifest
from minbench.data.extract import extract_archive
from minbench.errors import UserError
from minbench.io import file_lock, write_json_atomic, write_text_atomic

NAME = "mineralimage5k"
VERSION = "2023.1"
FULL_FILE = "minerals_full.csv"
SIZE_FILE = "minerals_size.csv"
SPLIT_FILES = {"fewshot_10": "minerals_10.csv", "fewshot_98": "minerals_98.csv", "fewshot_360": "minerals_360.csv"}
IMAGES_ZIP = "mineral_images.zip"
SEGM_TAR = "segm.tar"
TEST_FRACTION = 0.2
SPLIT_SEED = 0
REFERENCE_CUBE_CM = 1.27  # the authors' size script takes the reference cube as 1.27 cm a side
REPORT_FILE = "prepare_report.json"
MISSING_FILE = "missing_images.csv"
IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}
_EXTRACTED_MARK = ".minbench-extracted.json"


@dataclass
class PrepareReport:
    """What ``prepare`` did: counts, what it left out and why, warnings."""

    source: str
    out: str
    rows_total: int = 0
    rows_in_manifest: int = 0
    missing_images: int = 0
    missing_by_collection: dict[str, int] = field(default_factory=dict)
    left_out: dict[str, int] = field(default_factory=dict)
    splits: dict[str, dict[str, int]] = field(default_factory=dict)
    zeroshot: dict[str, int] = field(default_factory=dict)
    segmentation: dict[str, int] = field(default_factory=dict)
    size: dict[str, int] = field(default_factory=dict)
    split_policy: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    fingerprint: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


# ----------------------------------------------------------------------------- paths

def norm_path(raw: str) -> str | None:
    """A CSV image path as a clean relative POSIX path; None when it is unusable or unsafe.

    Paths from the authors' machines (``C:\\...\\mineral_images\\data\\2_mest\\...``) are cut to
    the ``data/...`` part.
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


def _find_file(source: Path, name: str) -> Path | None:
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


def _file_index(root: Path) -> dict[str, str]:
    """Every file under ``root``: relative path and its lower-case form -> relative path."""
    index: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        rel_dir = os.path.relpath(dirpath, root).replace(os.sep, "/")
        for name in filenames:
            rel = name if rel_dir == "." else f"{rel_dir}/{name}"
            index[rel] = rel
            index.setdefault(rel.lower(), rel)
    return index


def _link(link: Path, target: Path) -> None:
    """Point the symlink ``link`` at ``target`` (replacing an older link or our own extraction)."""
    link.parent.mkdir(parents=True, exist_ok=True)
    if link.is_symlink():
        if Path(os.readlink(link)) == target:
            return
    elif link.exists():
        mark = link.parent / f"{link.name}{_EXTRACTED_MARK}"
        if not mark.is_file():
            raise UserError(f"{link}: exists and was not made by minbench; move it away or pick another --out")
        import shutil

        shutil.rmtree(link)
        mark.unlink()
    tmp = link.with_name(f".{link.name}.link-{os.getpid()}")
    if tmp.is_symlink():
        tmp.unlink()
    os.symlink(target, tmp, target_is_directory=True)
    os.replace(tmp, link)


def _extract_once(archive: Path, target: Path) -> None:
    """Extract ``archive`` into ``target`` unless the same archive is already extracted there."""
    st = archive.stat()
    stamp = {"archive": str(archive.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns}
    mark = target.parent / f"{target.name}{_EXTRACTED_MARK}"
    if target.is_dir() and not target.is_symlink() and mark.is_file():
        try:
            if json.loads(mark.read_text(encoding="utf-8")) == stamp:
                return
        except ValueError:
            pass
    if target.is_symlink():
        target.unlink()
    extract_archive(archive, target)
    write_json_atomic(mark, stamp)


# ----------------------------------------------------------------------------- images

_ROTATED = (5, 6, 7, 8)


@dataclass(frozen=True)
class ImageInfo:
    width: int  # displayed (EXIF orientation applied)
    height: int
    orientation: int


def read_image_info(path: Path) -> ImageInfo | None:
    """Displayed size from the header alone (no decoding); None when unreadable."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            w, h = im.size
            try:
                orientation = int(im.getexif().get(0x0112, 1) or 1)
            except Exception:  # a damaged EXIF block must not cost the image
                orientation = 1
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return None
    if orientation in _ROTATED:
        w, h = h, w
    return ImageInfo(w, h, orientation if 1 <= orientation <= 8 else 1)


def _read_infos(paths: list[Path], progress: bool, label: str) -> list[ImageInfo | None]:
    workers = min(32, 4 * (os.cpu_count() or 2))  # header reads wait on the disk; threads suffice
    with ThreadPoolExecutor(workers) as pool:
        it = pool.map(read_image_info, paths, chunksize=64)
        if progress and len(paths) > 200:
            from rich.progress import track

            it = track(it, total=len(paths), description=label, transient=True)
        return list(it)


def _orient_point(x: float, y: float, orientation: int) -> tuple[float, float]:
    """A normalised point of the stored image -> the displayed image (EXIF orientation)."""
    return {
        1: (x, y), 2: (1 - x, y), 3: (1 - x, 1 - y), 4: (x, 1 - y),
        5: (y, x), 6: (1 - y, x), 7: (1 - y, 1 - x), 8: (y, 1 - x),
    }.get(orientation, (x, y))


def to_pixel_box(box, info: ImageInfo) -> list[float] | None:
    """[x1,y1,x2,y2] (normalised, or pixels of the stored image) -> displayed pixels, clipped."""
    try:
        x1, y1, x2, y2 = (float(v) for v in box)
    except (TypeError, ValueError):
        return None
    if not all(math.isfinite(v) for v in (x1, y1, x2, y2)):
        return None
    if max(x1, y1, x2, y2) > 1.0 + 1e-6:  # pixels of the stored file: normalise first
        sw, sh = (info.height, info.width) if info.orientation in _ROTATED else (info.width, info.height)
        x1, x2, y1, y2 = x1 / sw, x2 / sw, y1 / sh, y2 / sh
    (ax, ay), (bx, by) = _orient_point(x1, y1, info.orientation), _orient_point(x2, y2, info.orientation)
    xs = sorted(min(max(v, 0.0), 1.0) * info.width for v in (ax, bx))
    ys = sorted(min(max(v, 0.0), 1.0) * info.height for v in (ay, by))
    return [xs[0], ys[0], xs[1], ys[1]]


def _parse_literal(text: str):
    """JSON, else a Python literal (the release's scripts wrote both); None when neither."""
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        pass
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return None


def best_mineral_box(text: str, info: ImageInfo) -> str | None:
    """The highest-confidence OWL-ViT box in displayed pixels ('' when none; None when unparsable)."""
    boxes = _parse_literal(text)
    if boxes is None:
        return None if text else ""
    if not isinstance(boxes, list):
        return None
    best, best_conf = None, -math.inf
    for item in boxes:
        if not isinstance(item, dict) or "box" not in item:
            continue
        try:
            conf = float(item.get("confidence", 0.0))
        except (TypeError, ValueError):
            conf = 0.0
        if conf > best_conf:
            px = to_pixel_box(item["box"], info)
            if px is not None:
                best, best_conf = px, conf
    return manifest.format_box(best) if best else ""


def text_boxes_pixels(text: str, info: ImageInfo) -> str | None:
    """CRAFT boxes ``[[[x1,y1],[x2,y2]], ...]`` (normalised) -> ``[[x1,y1,x2,y2], ...]`` in pixels."""
    boxes = _parse_literal(text)
    if boxes is None:
        return None if text else ""
    if not isinstance(boxes, list):
        return None
    out = []
    for b in boxes:
        flat = [v for pt in b for v in pt] if isinstance(b, (list, tuple)) and b and isinstance(b[0], (list, tuple)) else b
        if isinstance(flat, (list, tuple)) and len(flat) == 8:  # a 4-point polygon
            xs, ys = flat[0::2], flat[1::2]
            flat = [min(xs), min(ys), max(xs), max(ys)]
        px = to_pixel_box(flat, info) if isinstance(flat, (list, tuple)) and len(flat) == 4 else None
        if px is None:
            return None
        out.append([round(v, 1) for v in px])
    return json.dumps(out)


# ----------------------------------------------------------------------------- splits

def _unit_hash(seed: int, sample_id: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{seed}:{sample_id}".encode()).digest()[:8], "big")


def seeded_split(ids: list[str], species: list[str], *, test_fraction: float = TEST_FRACTION,
                 seed: int = SPLIT_SEED) -> dict[str, str]:
    """Deterministic stratified train/test split: per species, the ``test_fraction`` of
    samples with the smallest seeded hash are test (at least 1 when the species has 2+)."""
    by_class: dict[str, list[str]] = {}
    for sid, sp in zip(ids, species):
        by_class.setdefault(sp, []).append(sid)
    out = {}
    for members in by_class.values():
        members = sorted(set(members), key=lambda s: (_unit_hash(seed, s), s))
        n_test = min(max(1, round(len(members) * test_fraction)), len(members) - 1) if len(members) > 1 else 0
        for i, sid in enumerate(members):
            out[sid] = "test" if i < n_test else "train"
    return out


_TRAIN_WORDS = {"train", "training", "trn", "val", "valid", "validation", "dev"}
_TEST_WORDS = {"test", "testing", "tst", "eval", "evaluation"}
_TRUE = {"1", "true", "yes", "y", "t"}
_FALSE = {"0", "false", "no", "n", "f"}


def _split_value(raw: str, col_name: str, where: str) -> str:
    v = raw.strip().lower()
    if col_name in ("is_test", "test"):
        if v in _TRUE:
            return "test"
        if v in _FALSE:
            return "train"
    elif v in _TRAIN_WORDS:
        return "train"
    elif v in _TEST_WORDS:
        return "test"
    raise UserError(f"{where}: split value {raw!r} in column {col_name!r} is not train/test")


def read_split_csv(path: Path, ids: set[str], path_to_id: dict[str, str]) -> tuple[list[str], list[str] | None, list[str]]:
    """Sample ids a split CSV lists (in order, deduplicated), its train/test column if any, warnings."""
    aliases = set(cs.ID_ALIASES) | set(cs.PATH_ALIASES) | set(cs.SPLIT_ALIASES) | {
        a for _, al in cs.FULL_FIELDS for a in al}
    data = cs.read_csv(path, aliases)
    if not data.rows:
        raise UserError(f"{path}: no rows")
    cs.check_width(data, len(data.header) if data.header else len(data.rows[0]))
    names = [cs.norm_header(h) for h in data.header] if data.header else []

    def as_ids(values: list[str], by_path: bool) -> list[str | None]:
        if by_path:
            return [path_to_id.get((norm_path(v) or "").lower()) for v in values]
        return [v if v in ids else None for v in values]

    key = None
    for alias, by_path in [(a, False) for a in cs.ID_ALIASES] + [(a, True) for a in cs.PATH_ALIASES]:
        if alias in names:
            key = as_ids(cs.column(data, names.index(alias)), by_path)
            break
    if key is None:  # no header, or unnamed: find the column whose values are sample ids or paths
        best, best_hits = None, 0
        for idx in range(min(len(data.rows[0]), 20)):
            values = cs.column(data, idx)
            for by_path in (False, True):
                cand = as_ids(values, by_path)
                hits = sum(c is not None for c in cand)
                if hits > best_hits:
                    best, best_hits = cand, hits
        if best is None or best_hits < len(data.rows) / 2:
            raise UserError(f"{path}: no column holds the sample ids or image paths of {FULL_FILE}")
        key = best
    warnings = list(data.warnings)
    unknown = sum(k is None for k in key)
    if unknown:
        warnings.append(f"{path}: {unknown} rows name no sample of {FULL_FILE}; ignored")
    split = None
    for alias in cs.SPLIT_ALIASES:
        if alias in names:
            col = cs.column(data, names.index(alias))
            split = [_split_value(v, alias, f"{path} line {ln}") for v, ln in zip(col, data.lines)]
            break
    seen: dict[str, str | None] = {}
    for i, sid in enumerate(key):
        if sid is not None and sid not in seen:
            seen[sid] = split[i] if split else None
    return list(seen), ([seen[s] for s in seen] if split else None), warnings


# ----------------------------------------------------------------------------- masks

def _find_segm_root(folder: Path, exclude: Path) -> Path | None:
    for d in _subdirs(folder, 2, exclude):
        if (d / "img").is_dir() and (d / "mask").is_dir():
            return d
    return None


def _stem_key(name: str) -> str:
    stem = Path(name).stem.lower()
    return re.sub(r"[_\-. ]?mask$", "", stem)


def _safe_name(sample_id: str) -> str:
    return re.sub(r"[^\w.\-]", "_", sample_id)


def _write_mask(src: Path, dst: Path, size: tuple[int, int]) -> None:
    """Binarise (white = mineral -> 255) and resize (nearest) a mask into a PNG, atomically."""
    import io

    import numpy as np
    from PIL import Image

    with Image.open(src) as im:
        gray = im.convert("L")
    if gray.size != size:
        gray = gray.resize(size, Image.NEAREST)
    binary = Image.fromarray(((np.asarray(gray) > 127) * 255).astype("uint8"), mode="L")
    buf = io.BytesIO()
    binary.save(buf, format="PNG")
    from minbench.io import write_bytes_atomic

    write_bytes_atomic(dst, buf.getvalue())


# ----------------------------------------------------------------------------- prepare

def _resolve_images(source: Path, out: Path, full_paths: list[str], warnings: list[str]) -> Path:
    """The folder the CSV's image paths are relative to (unpacked, or extracted from the zip)."""
    probe = [p for p in full_paths if p][:300]
    out_resolved = out.resolve()

    def best_root(folders: list[Path]) -> tuple[Path | None, int]:
        scored = [(sum((d / p).is_file() for p in probe), i, d) for i, d in enumerate(folders)]
        scored = [s for s in scored if s[0] > 0]
        if not scored:
            return None, 0
        hits, _, d = max(scored, key=lambda s: (s[0], -s[1]))
        return d, hits

    root, _ = best_root(_subdirs(source, 2, out_resolved))
    archive = _find_file(source, IMAGES_ZIP)
    if root is not None:
        if archive is not None:
            warnings.append(f"{archive}: ignored, the unpacked images under {root} are used")
        return root
    if archive is None:
        raise UserError(f"{source}: none of the images {FULL_FILE} names is here (e.g. {probe[0] if probe else '?'}) "
                        f"and there is no {IMAGES_ZIP}")
    target = out / "raw" / "mineral_images"
    _extract_once(archive, target)
    root, _ = best_root(_subdirs(target, 2, Path("/nonexistent")))
    if root is None:
        raise UserError(f"{archive}: holds none of the images {FULL_FILE} names (e.g. {probe[0] if probe else '?'})")
    return root


def _resolve_segm(source: Path, out: Path, warnings: list[str]) -> Path | None:
    root = None
    if (source / "segm").is_dir():
        root = _find_segm_root(source / "segm", out.resolve())
    if root is None:
        archive = _find_file(source, SEGM_TAR)
        if archive is None:
            warnings.append(f"{source}: no segm/ folder and no {SEGM_TAR}; the segmentation set is empty")
            return None
        target = out / "raw" / "segm"
        _extract_once(archive, target)
        root = _find_segm_root(target, Path("/nonexistent"))
        if root is None:
            warnings.append(f"{archive}: has no img/ and mask/ folders; the segmentation set is empty")
    return root


def _rel_through_link(root: Path, out: Path, link_name: str) -> str:
    """Path prefix from ``out`` to ``root`` ('' or ending in '/'): inside ``out`` as is, else
    through a symlink ``out/raw/<link_name>``."""
    try:
        rel = root.resolve().relative_to(out.resolve()).as_posix()
    except ValueError:
        _link(out / "raw" / link_name, root.resolve())
        rel = f"raw/{link_name}"
    return "" if rel == "." else f"{rel}/"


def prepare(source: str | os.PathLike, out: str | os.PathLike, *, progress: bool = False) -> PrepareReport:
    """Build ``out/manifest.parquet`` (+ reports) from the release at ``source``. Idempotent."""
    source, out = Path(source).expanduser(), Path(out).expanduser()
    if not source.is_dir():
        raise UserError(f"--source {source}: not a folder (give the release folder, or the folder "
                        f"holding {IMAGES_ZIP}, {SEGM_TAR} and the CSVs)")
    out.mkdir(parents=True, exist_ok=True)
    with file_lock(out / ".prepare.lock"):
        report = _prepare(source, out, progress)
    if progress:
        print_summary(report)
    return report


def _prepare(source: Path, out: Path, progress: bool) -> PrepareReport:
    report = PrepareReport(source=str(source.resolve()), out=str(out.resolve()))
    warn = report.warnings
    left_out: Counter[str] = Counter()

    full_csv = _find_file(source, FULL_FILE)
    if full_csv is None:
        raise UserError(f"--source {source}: no {FULL_FILE} (the release's table of all samples) there")
    split_csvs = {}
    for col, name in SPLIT_FILES.items():
        split_csvs[col] = _find_file(source, name)
        if split_csvs[col] is None:
            raise UserError(f"--source {source}: no {name} (the {col.replace('_', '-')} subset) there")

    full = cs.read_csv(full_csv, {a for _, al in cs.FULL_FIELDS for a in al})
    cols = cs.map_columns(full, cs.FULL_FIELDS, cs.FULL_REQUIRED, positional=True)
    warn += full.warnings
    get = {name: cs.column(full, idx) for name, idx in cols.items()}
    report.rows_total = len(full.rows)
    if not full.rows:
        raise UserError(f"{full_csv}: no data rows")

    # One record per unique sample id, in file order.
    records: list[dict[str, Any]] = []
    seen: set[str] = set()
    for i in range(len(full.rows)):
        sid = get["sample_id"][i]
        where = f"{full_csv} line {full.lines[i]}"
        if not sid:
            left_out["empty_sample_id"] += 1
            if left_out["empty_sample_id"] <= 3:
                warn.append(f"{where}: empty sample id; row skipped")
            continue
        if sid in seen:
            left_out["duplicate_sample_id"] += 1
            continue
        seen.add(sid)
        rel = norm_path(get["path"][i])
        records.append({"i": i, "sample_id": sid, "rel": rel, "raw_path": get["path"][i],
                        "collection": collection_of(rel) if rel else ""})
    if left_out["duplicate_sample_id"]:
        warn.append(f"{full_csv}: {left_out['duplicate_sample_id']} rows repeat an earlier sample id; the first is kept")

    images_root = _resolve_images(source, out, [r["rel"] for r in records if r["rel"]], warn)
    images_rel = _rel_through_link(images_root, out, "mineral_images")
    index = _file_index(images_root)
    for r in records:
        found = index.get(r["rel"]) or index.get(r["rel"].lower()) if r["rel"] else None
        r["file"] = found
    infos = _read_infos([images_root / r["file"] for r in records if r["file"]], progress, "reading image headers")
    it = iter(infos)
    for r in records:
        r["info"] = next(it) if r["file"] else None
        r["image_path"] = f"{images_rel}{r['file']}" if r["file"] else ""

    # Segmentation: match img/ + mask/ files to samples by file stem.
    segm_root = _resolve_segm(source, out, warn)
    seg_for: dict[str, tuple[Path, Path | None]] = {}
    seg_stats: Counter[str] = Counter()
    if segm_root is not None:
        segm_rel = _rel_through_link(segm_root, out, "segm")
        by_key: dict[str, str] = {}
        for r in records:
            by_key.setdefault(r["sample_id"].lower(), r["sample_id"])
            if r["rel"]:
                by_key.setdefault(_stem_key(r["rel"]), r["sample_id"])
        imgs = {_stem_key(p.name): p for p in sorted((segm_root / "img").iterdir())
                if p.suffix.lower() in IMAGE_EXTS}
        unmatched = []
        for mask in sorted((segm_root / "mask").iterdir()):
            if mask.suffix.lower() not in IMAGE_EXTS:
                continue
            key = _stem_key(mask.name)
            sid = by_key.get(key) or (by_key.get(key[4:]) if key.startswith("fmm_") else None)
            if sid is None:
                unmatched.append(mask.name)
            elif sid not in seg_for:
                seg_for[sid] = (mask, imgs.get(key))
        seg_stats["masks_unmatched"] = len(unmatched)
        if unmatched:
            warn.append(f"{segm_root / 'mask'}: {len(unmatched)} masks match no sample id "
                        f"(e.g. {', '.join(unmatched[:3])}); ignored")
        masks_dir = out / "masks"
        masks_dir.mkdir(exist_ok=True)
        written = set()
        for r in records:
            if r["sample_id"] not in seg_for:
                continue
            mask, seg_img = seg_for[r["sample_id"]]
            mask_info = read_image_info(mask)
            if mask_info is None:
                seg_stats["mask_unreadable"] += 1
                continue
            msize = (mask_info.width, mask_info.height)
            info = r["info"]
            seg_info = read_image_info(seg_img) if seg_img is not None else None
            if info is not None and (info.width, info.height) == msize:
                pass
            elif seg_info is not None and (seg_info.width, seg_info.height) == msize:
                # The photo the mask was drawn on; also recovers rows whose main image is missing.
                r["info"], r["image_path"] = seg_info, f"{segm_rel}img/{seg_img.name}"
                seg_stats["image_from_segm"] += 1
            elif info is not None and abs(msize[0] / msize[1] - info.width / info.height) < 0.02 * info.width / info.height:
                seg_stats["mask_resized"] += 1
            else:
                seg_stats["mask_size_mismatch"] += 1
                continue
            name = f"{_safe_name(r['sample_id'])}.png"
            _write_mask(mask, masks_dir / name, (r["info"].width, r["info"].height))
            written.add(name)
            r["mask_path"] = f"masks/{name}"
    else:
        written = set()
    for stale in (out / "masks").glob("*.png"):  # masks of an earlier run that no longer apply
        if stale.name not in written:
            stale.unlink()

    # Rows without a readable image are reported and left out.
    missing_rows = []
    kept = []
    for r in records:
        reason = None
        if r["rel"] is None:
            reason = "bad_path"
        elif not r["image_path"]:
            reason = "no_image"
        elif r["info"] is None:
            reason = "unreadable_image"
        if reason:
            missing_rows.append({"sample_id": r["sample_id"], "path": r["raw_path"],
                                 "collection": r["collection"], "reason": reason})
            left_out[reason] += 1
        else:
            kept.append(r)
    report.missing_images = len(missing_rows)
    report.missing_by_collection = dict(sorted(Counter(m["collection"] for m in missing_rows).items()))

    rows = []
    bad_boxes: Counter[str] = Counter()
    for r in kept:
        i, info = r["i"], r["info"]
        species = " ".join(get["en_name"][i].lower().split())
        if not species:
            left_out["no_english_name"] += 1
            continue
        row = manifest.empty_row()
        bbox = best_mineral_box(get["mineral_boxes"][i], info)
        text = text_boxes_pixels(get["text_boxes"][i], info)
        if bbox is None:
            bad_boxes["mineral_boxes"] += 1
        if text is None:
            bad_boxes["text_boxes"] += 1
        row.update(
            sample_id=r["sample_id"], image_path=r["image_path"], width=info.width, height=info.height,
            species=species, species_ru=get["ru_species"][i] or get["ru_name"][i].lower(),
            variety=get["ru_variety"][i], satellites=get["en_satellites"][i], collection=r["collection"],
            description=get["en_description"][i], text_boxes=text or "", mineral_boxes=get["mineral_boxes"][i],
            bbox=bbox or "", mask_path=r.get("mask_path", ""), segmentation=bool(r.get("mask_path")),
            source=NAME,
        )
        rows.append(row)
    for col, n in bad_boxes.items():
        warn.append(f"{full_csv}: {n} rows have an unparsable {col} value; left empty")
    if left_out["no_english_name"]:
        warn.append(f"{full_csv}: {left_out['no_english_name']} rows with an image have no English name; left out")
    if not rows:
        raise UserError(f"{source}: no row of {FULL_FILE} has a readable image; nothing to prepare")
    df = pd.DataFrame(rows)
    present = dict(zip(df["sample_id"], df["species"]))

    # Few-shot subsets.
    path_to_id = {r["rel"].lower(): r["sample_id"] for r in records if r["rel"]}
    all_ids = {r["sample_id"] for r in records}
    fewshot_classes: set[str] = set()
    for col, path in split_csvs.items():
        ids, split, w = read_split_csv(path, all_ids, path_to_id)
        warn += w
        keep = [k for k in range(len(ids)) if ids[k] in present]
        if len(keep) < len(ids):
            warn.append(f"{path}: {len(ids) - len(keep)} of its {len(ids)} samples have no image; left out")
        ids_kept = [ids[k] for k in keep]
        if split is not None:
            assign = {ids[k]: split[k] for k in keep}
            report.split_policy[col] = f"{path.name}: its split column"
        else:
            assign = seeded_split(ids_kept, [present[s] for s in ids_kept])
            report.split_policy[col] = (f"{path.name}: seeded stratified split, test fraction {TEST_FRACTION}, "
                                        f"seed {SPLIT_SEED}")
        df[col] = df["sample_id"].map(assign).fillna("")
        classes = set(df.loc[df[col] != "", "species"])
        fewshot_classes |= classes
        report.splits[col] = {"train": int((df[col] == "train").sum()), "test": int((df[col] == "test").sum()),
                              "classes": len(classes)}

    # Zero-shot: every imaged row whose species no few-shot subset holds.
    df["zeroshot"] = ~df["species"].isin(fewshot_classes)
    report.zeroshot = {"rows": int(df["zeroshot"].sum()), "classes": int(df.loc[df["zeroshot"], "species"].nunique()),
                       "classes_excluded_as_fewshot": len(fewshot_classes)}

    # Sizes, joined by image path.
    size_csv = _find_file(source, SIZE_FILE)
    size_stats: Counter[str] = Counter()
    if size_csv is None:
        warn.append(f"--source {source}: no {SIZE_FILE}; the size set is empty")
    else:
        sizes = cs.read_csv(size_csv, {a for _, al in cs.SIZE_FIELDS for a in al})
        scols = cs.map_columns(sizes, cs.SIZE_FIELDS, cs.SIZE_REQUIRED, positional=False)
        warn += sizes.warnings
        by_rel = {r["rel"].lower(): r["sample_id"] for r in records if r["rel"]}
        by_name = Counter(Path(k).name for k in by_rel)
        name_to_id = {Path(k).name: v for k, v in by_rel.items() if by_name[Path(k).name] == 1}
        size_of: dict[str, float] = {}
        for raw, value, line in zip(cs.column(sizes, scols["path"]), cs.column(sizes, scols["size_cm"]), sizes.lines):
            rel = (norm_path(raw) or "").lower()
            sid = by_rel.get(rel) or name_to_id.get(Path(rel).name)
            try:
                cm = float(value.replace(",", "."))
            except ValueError:
                cm = math.nan
            if sid is None:
                size_stats["unmatched"] += 1
            elif sid not in present:
                size_stats["no_image"] += 1
            elif not (math.isfinite(cm) and cm > 0):
                size_stats["invalid"] += 1
            elif sid in size_of:
                size_stats["duplicate"] += 1
            else:
                size_of[sid] = cm
        df["size_cm"] = df["sample_id"].map(size_of).astype("float64")
        df["size"] = df["size_cm"].notna()
        explain = {"unmatched": "name no image path of " + FULL_FILE, "no_image": "belong to samples without an image",
                   "invalid": "have no positive size", "duplicate": "repeat a path (the first is kept)"}
        for what, n in sorted(size_stats.items()):
            warn.append(f"{size_csv}: {n} rows {explain[what]}; ignored")

    report.rows_in_manifest = len(df)
    report.left_out = dict(sorted(left_out.items()))
    report.segmentation = {"rows": int(df["segmentation"].sum()), **dict(sorted(seg_stats.items()))}
    report.size = {"rows": int(df["size"].sum()), **dict(sorted(size_stats.items()))}

    missing = pd.DataFrame(missing_rows, columns=["sample_id", "path", "collection", "reason"])
    write_text_atomic(out / MISSING_FILE, missing.to_csv(index=False, lineterminator="\n"))
    info = manifest.write_dataset(out, df, name=NAME, version=VERSION, source=NAME, extra={
        "source_root": report.source,
        "images_root": images_rel.rstrip("/") or ".",
        "split_policy": report.split_policy,
        "zeroshot_policy": "rows whose species is in no few-shot subset (train or test); the paper's "
                           "zero-shot set (all classes) minus the few-shot classes",
        "orientation": "width/height/bbox/text_boxes in the displayed frame (EXIF orientation applied)",
        "masks": "masks/<sample_id>.png, 255 = mineral, at the image's displayed size",
        "reference_cube_cm": REFERENCE_CUBE_CM,
        "prepare_report": REPORT_FILE,
        "missing_images": MISSING_FILE,
    })
    report.fingerprint = info.fingerprint
    write_json_atomic(out / REPORT_FILE, report.to_json())
    return report


def print_summary(report: PrepareReport) -> None:
    """A rich summary: rows, images found, missing by collection, per split."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = Console()
    t = Table(title=f"MineralImage5k -> {report.out}", show_header=True)
    t.add_column("what")
    t.add_column("rows", justify="right")
    t.add_column("classes / note", justify="right")
    t.add_row(FULL_FILE, str(report.rows_total), "")
    t.add_row("in the manifest (image found)", str(report.rows_in_manifest), "")
    t.add_row("without an image (left out)", str(report.missing_images), MISSING_FILE)
    for coll, n in report.missing_by_collection.items():
        t.add_row(f"  missing in {coll or '?'}", str(n), "")
    for reason, n in report.left_out.items():
        if reason not in ("no_image",):
            t.add_row(f"  left out: {reason}", str(n), "")
    for col, s in report.splits.items():
        t.add_row(f"{col} train / test", f"{s['train']} / {s['test']}", str(s["classes"]))
    t.add_row("zeroshot", str(report.zeroshot.get("rows", 0)), str(report.zeroshot.get("classes", 0)))
    t.add_row("segmentation", str(report.segmentation.get("rows", 0)), "")
    t.add_row("size", str(report.size.get("rows", 0)), "")
    console.print(t)
    for w in report.warnings:
        console.print(Text("warning: ", style="yellow") + Text(w), highlight=False)
    console.print(f"fingerprint {report.fingerprint}; report in {Path(report.out) / REPORT_FILE}")
