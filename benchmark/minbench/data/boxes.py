"""Boxes: the one parser, the one rule for normalised against pixel coordinates.

Forms read (from the release's CSV cells, the manifest, or Python lists):

- a flat box ``[x1, y1, x2, y2]``;
- CRAFT's ``[[x1, y1], [x2, y2]]`` or a four-point polygon ``[[x, y] * 4]`` (its extent);
- OWL-ViT's ``{"label", "confidence" (or "score"), "box" (or "bbox")}``;
- a cell holding one box or a list of them, as JSON or a Python literal (the release's
  scripts wrote both).

**The rule.** A box whose coordinates all lie within ``[-NORMALISED_MAX, NORMALISED_MAX]``
is normalised (fractions of the image's width and height); any other box is in pixels.
Normalised detector boxes overshoot [0, 1] a little (OWL-ViT's centre +- half size),
never by as much as 1; a pixel box that small would cover two pixels of a photo.
Manifest boxes (``bbox``, ``cube_bbox``, ``text_boxes``) are written in pixels of the
displayed image.

**Conversion** (``to_pixels``): a box of the stored file (normalised, or pixels of the
stored frame) becomes displayed pixels: EXIF orientation applied, corners sorted, clipped
to the image.
"""

from __future__ import annotations

import ast
import json
import math
from typing import Any

NORMALISED_MAX = 2.0
ROTATED = (5, 6, 7, 8)  # EXIF orientations that swap width and height


def parse_literal(text: str) -> Any:
    """JSON, else a Python literal; None when neither (or empty)."""
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        pass
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError, TypeError):
        return None


def flatten_box(item: Any) -> list[float] | None:
    """One box in any accepted form (dicts excepted) as ``[x1, y1, x2, y2]`` floats; None
    when malformed or not finite."""
    if not isinstance(item, (list, tuple)):
        return None
    if item and all(isinstance(p, (list, tuple)) for p in item):
        item = [v for p in item for v in p]
    try:
        vals = [float(v) for v in item]
    except (TypeError, ValueError):
        return None
    if len(vals) == 8:
        xs, ys = vals[0::2], vals[1::2]
        vals = [min(xs), min(ys), max(xs), max(ys)]
    if len(vals) != 4 or not all(math.isfinite(v) for v in vals):
        return None
    return vals


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _is_one_box(raw: list | tuple) -> bool:
    """Flat numbers, or 2-number points: one box (else a list of boxes)."""
    if len(raw) in (4, 8) and all(_is_number(v) for v in raw):
        return True
    return len(raw) in (2, 4) and all(isinstance(p, (list, tuple)) and len(p) == 2 and all(map(_is_number, p))
                                      for p in raw)


def box_items(value: Any) -> list[tuple[list[float] | None, float]] | None:
    """(box or None when that box is malformed, confidence) for each box of a cell or
    list; [] for an empty cell; None when the cell does not parse to a list."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return []
    raw = parse_literal(value) if isinstance(value, str) else value
    if not isinstance(raw, (list, tuple)):
        return None
    if _is_one_box(raw):
        raw = [raw]
    out = []
    for item in raw:
        conf = 1.0  # a box without a confidence is taken as certain
        if isinstance(item, dict):
            try:
                conf = float(item.get("confidence", item.get("score", 1.0)) or 0.0)
            except (TypeError, ValueError):
                conf = 0.0
            item = item.get("box", item.get("bbox"))
        out.append((flatten_box(item), conf))
    return out


def is_normalised(box: list[float]) -> bool:
    """The rule: every coordinate within +-``NORMALISED_MAX`` means fractions of the image."""
    return max(abs(v) for v in box) <= NORMALISED_MAX


def _orient(x: float, y: float, orientation: int, w: float, h: float) -> tuple[float, float]:
    """A point of the stored frame (extent w x h) in the displayed frame (EXIF orientation)."""
    return {
        1: (x, y), 2: (w - x, y), 3: (w - x, h - y), 4: (x, h - y),
        5: (y, x), 6: (h - y, x), 7: (h - y, w - x), 8: (y, w - x),
    }.get(orientation, (x, y))


def to_pixels(box: list[float], width: int, height: int, orientation: int = 1) -> list[float]:
    """A box of the stored file (normalised or pixels, by the rule) -> ``[x1, y1, x2, y2]``
    in pixels of the displayed image (``width`` x ``height``), sorted and clipped."""
    normalised = is_normalised(box)
    if normalised:
        sw, sh = 1.0, 1.0
    else:
        sw, sh = (height, width) if orientation in ROTATED else (width, height)
    (ax, ay), (bx, by) = (_orient(box[0], box[1], orientation, sw, sh), _orient(box[2], box[3], orientation, sw, sh))
    fx, fy = (width, height) if normalised else (1.0, 1.0)
    xs = sorted(min(max(v * fx, 0.0), float(width)) for v in (ax, bx))
    ys = sorted(min(max(v * fy, 0.0), float(height)) for v in (ay, by))
    return [xs[0], ys[0], xs[1], ys[1]]


def pixel_boxes(value: Any, width: int, height: int, *, orientation: int = 1,
                with_confidence: bool = False) -> list:
    """Every well-formed box of a cell or list in displayed pixels (malformed ones skipped);
    with ``with_confidence``, ``(box, confidence)`` pairs."""
    out = []
    for box, conf in box_items(value) or []:
        if box is None:
            continue
        px = to_pixels(box, width, height, orientation)
        out.append((px, conf) if with_confidence else px)
    return out


def parse_box(text: str) -> tuple[float, float, float, float] | None:
    """A manifest box cell ``'[x1, y1, x2, y2]'`` (pixels) to a tuple; None for '' or
    anything malformed (including x2 < x1 or y2 < y1)."""
    if not text:
        return None
    try:
        box = json.loads(text)
        x1, y1, x2, y2 = (float(v) for v in box)
    except (ValueError, TypeError):
        return None
    return (x1, y1, x2, y2) if x2 >= x1 and y2 >= y1 else None


def parse_box_list(text: str) -> list[tuple[float, float, float, float]]:
    """A manifest cell holding one pixel box or a list of them (``text_boxes``); [] when
    empty or malformed; malformed boxes are skipped."""
    return [tuple(b) for b, _ in box_items(text) or [] if b is not None]


def format_box(box) -> str:
    """A box to its manifest text (rounded to 0.1 px so manifests stay byte-stable)."""
    if box is None:
        return ""
    return json.dumps([round(float(v), 1) for v in box])
