"""The release's box columns -> manifest boxes in displayed pixels.

``mineral_boxes`` (OWL-ViT) is a list of ``{"label", "confidence", "box": [x1,y1,x2,y2]}``
and ``text_boxes`` (CRAFT) a list of ``[[x1,y1],[x2,y2]]``, both normalised to the
stored image (the authors' scripts opened files without applying EXIF orientation).
A box with a coordinate above 2 is taken as pixels of the stored file: normalised
detector boxes overshoot 1 a little (OWL-ViT's centre +- half size), never that far.
"""

from __future__ import annotations

import ast
import json
import math

from minbench.data.manifest import format_box
from minbench.data.photo import ROTATED, ImageInfo

_PIXELS_ABOVE = 2.0


def _orient_point(x: float, y: float, orientation: int) -> tuple[float, float]:
    """A normalised point of the stored image -> the displayed image (EXIF orientation)."""
    return {
        1: (x, y), 2: (1 - x, y), 3: (1 - x, 1 - y), 4: (x, 1 - y),
        5: (y, x), 6: (1 - y, x), 7: (1 - y, 1 - x), 8: (y, 1 - x),
    }.get(orientation, (x, y))


def to_pixel_box(box, info: ImageInfo) -> list[float] | None:
    """[x1,y1,x2,y2] of the stored image (normalised or pixels) -> displayed pixels, clipped."""
    try:
        x1, y1, x2, y2 = (float(v) for v in box)
    except (TypeError, ValueError):
        return None
    if not all(math.isfinite(v) for v in (x1, y1, x2, y2)):
        return None
    if max(x1, y1, x2, y2) > _PIXELS_ABOVE:
        sw, sh = (info.height, info.width) if info.orientation in ROTATED else (info.width, info.height)
        x1, x2, y1, y2 = x1 / sw, x2 / sw, y1 / sh, y2 / sh
    (ax, ay), (bx, by) = _orient_point(x1, y1, info.orientation), _orient_point(x2, y2, info.orientation)
    xs = sorted(min(max(v, 0.0), 1.0) * info.width for v in (ax, bx))
    ys = sorted(min(max(v, 0.0), 1.0) * info.height for v in (ay, by))
    return [xs[0], ys[0], xs[1], ys[1]]


def parse_literal(text: str):
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


def _as_list(text: str) -> list | None:
    """A cell holding a list: [] when empty, None when unparsable or not a list."""
    if not text:
        return []
    value = parse_literal(text)
    return value if isinstance(value, list) else None


def best_mineral_box(text: str, info: ImageInfo) -> str | None:
    """The highest-confidence mineral box as manifest text ('' when none; None when unparsable)."""
    boxes = _as_list(text)
    if boxes is None:
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
    return format_box(best)


def _flatten(box) -> list | None:
    """``[[x1,y1],[x2,y2]]``, a 4-point polygon or a flat box -> ``[x1,y1,x2,y2]``."""
    if not isinstance(box, (list, tuple)):
        return None
    if box and all(isinstance(p, (list, tuple)) for p in box):
        box = [v for p in box for v in p]
    if len(box) == 8:
        xs, ys = box[0::2], box[1::2]
        try:
            return [min(xs), min(ys), max(xs), max(ys)]
        except TypeError:
            return None
    return list(box) if len(box) == 4 else None


def text_boxes_pixels(text: str, info: ImageInfo) -> str | None:
    """CRAFT boxes -> ``[[x1,y1,x2,y2], ...]`` in displayed pixels ('' when none; None when unparsable)."""
    if not text:
        return ""
    boxes = _as_list(text)
    if boxes is None:
        return None
    out = []
    for b in boxes:
        px = to_pixel_box(flat, info) if (flat := _flatten(b)) is not None else None
        if px is None:
            return None
        out.append([round(v, 1) for v in px])
    return json.dumps(out)
