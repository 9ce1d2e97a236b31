"""The release's segmentation masks -> ``out/masks/<sample_id>.png`` (``minbench data prepare``).

Masks are matched to samples by file stem (``2_27312``, ``FMM_2_27312``, ``..._mask``). A
mask of another size than the photo uses ``segm/img``'s copy of the photo when that has the
mask's size (this also recovers rows whose photo is missing), else is resized (nearest)
when the aspect ratios agree within 2%, else is dropped and counted. Each is binarised by
the truth rule of ``data.masks`` (EXIF applied; any bright colour, palette or 16-bit value =
mineral) to 0/255 at the size of the row's image.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from minbench.data.masks import BadMask, mask_png_bytes, read_truth_mask
from minbench.data.photo import read_image_info
from minbench.data.release_layout import SampleRecord, prefix_in, resolve_segm
from minbench.io import write_bytes_atomic

MASKS_DIR = "masks"
IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}
_UNSAFE_CHARS = re.compile(r"[^\w.-]")  # sample ids become mask file names
#: outcomes of ``_place_mask`` whose mask is written
_PLACED = ("same_size", "image_from_segm", "mask_resized")


@dataclass
class MaskResult:
    """What ``attach_masks`` did."""

    written: set[str] = field(default_factory=set)   # file names under ``out/masks``
    counts: dict[str, int] = field(default_factory=dict)   # the report's ``segmentation``: rows + outcomes
    empty: list[str] = field(default_factory=list)   # sample ids (sorted) whose mask has no mineral pixel


def attach_masks(source: Path, out: Path, records: list[SampleRecord], warnings: list[str]) -> MaskResult:
    """Match ``segm/mask`` files to samples by stem and write them to ``out/masks`` at the
    image's size, setting each matched record's ``mask_path`` (and, for a photo taken from
    ``segm/img``, its ``image_path`` and ``info``). Problems are appended to ``warnings``."""
    stats: Counter[str] = Counter()
    result = MaskResult()
    root = resolve_segm(source, out, warnings)
    if root is not None:
        _match(root, out, records, warnings, stats, result)
    if result.empty:
        stats["masks_empty"] = len(result.empty)
        result.empty = sorted(result.empty)
    result.counts = {"rows": len(result.written), **dict(sorted((k, v) for k, v in stats.items() if v))}
    return result


def _stem_key(name: str) -> str:
    return re.sub(r"[_\-. ]?mask$", "", Path(name).stem.lower())


def _match(root: Path, out: Path, records: list[SampleRecord], warnings: list[str], stats: Counter,
           result: MaskResult) -> None:
    """Every mask under ``root/mask``: its sample, its photo, its file (``attach_masks``)."""
    prefix = prefix_in(out, root, "segm")
    by_key: dict[str, SampleRecord] = {}
    for r in records:
        by_key.setdefault(r.sample_id.lower(), r)
        if r.rel:
            by_key.setdefault(_stem_key(r.rel), r)
    imgs = {_stem_key(p.name): p for p in sorted((root / "img").iterdir()) if p.suffix.lower() in IMAGE_EXTS}
    unmatched, done = [], set()
    (out / MASKS_DIR).mkdir(exist_ok=True)
    for mask in sorted((root / "mask").iterdir()):
        if mask.suffix.lower() not in IMAGE_EXTS:
            continue
        key = _stem_key(mask.name)
        r = by_key.get(key) or (by_key.get(key[4:]) if key.startswith("fmm_") else None)
        if r is None:
            unmatched.append(mask.name)
            continue
        if r.sample_id in done:
            continue
        done.add(r.sample_id)
        outcome = _place_mask(r, mask, imgs.get(key), prefix)
        stats[outcome] += 1
        if outcome not in _PLACED:
            continue
        name = _UNSAFE_CHARS.sub("_", r.sample_id) + ".png"
        try:
            if not _write_mask(mask, out / MASKS_DIR / name, (r.info.width, r.info.height)):
                result.empty.append(r.sample_id)
        except BadMask as exc:
            stats["mask_unreadable"] += 1
            warnings.append(str(exc))
            continue
        result.written.add(name)
        r.mask_path = f"{MASKS_DIR}/{name}"
    stats["masks_unmatched"] = len(unmatched)
    if unmatched:
        warnings.append(f"{root / 'mask'}: {len(unmatched)} masks match no sample id "
                        f"(e.g. {', '.join(unmatched[:3])}); ignored")
    stats.pop("same_size", None)


def _write_mask(src: Path, dst: Path, size: tuple[int, int]) -> bool:
    """Read a release mask by the truth rule (``data.masks``: EXIF applied, any bright colour
    = mineral), resize it (nearest) to ``size`` and write it as a 0/255 PNG, atomically.
    Returns whether it has any mineral pixel. Raises ``BadMask``."""
    import numpy as np
    from PIL import Image

    mask = read_truth_mask(src)
    if (mask.shape[1], mask.shape[0]) != tuple(size):
        mask = np.asarray(Image.fromarray(mask.astype(np.uint8)).resize(size, Image.NEAREST)) > 0
    write_bytes_atomic(dst, mask_png_bytes(mask))
    return bool(mask.any())


def _place_mask(r: SampleRecord, mask: Path, seg_img: Path | None, segm_prefix: str) -> str:
    """Decide which photo a mask goes with (see the module docstring); returns the outcome."""
    mask_info = read_image_info(mask)
    if mask_info is None:
        return "mask_unreadable"
    msize = (mask_info.width, mask_info.height)
    if r.info is not None and (r.info.width, r.info.height) == msize:
        return "same_size"
    seg_info = read_image_info(seg_img) if seg_img is not None else None
    if seg_info is not None and (seg_info.width, seg_info.height) == msize:
        r.info, r.image_path = seg_info, f"{segm_prefix}img/{seg_img.name}"
        return "image_from_segm"
    if r.info is not None:
        aspect = r.info.width / r.info.height
        if abs(msize[0] / msize[1] - aspect) < 0.02 * aspect:
            return "mask_resized"
    return "mask_size_mismatch"
