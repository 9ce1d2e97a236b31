"""The release's box columns -> manifest boxes in displayed pixels.

``mineral_boxes`` (OWL-ViT) is a list of ``{"label", "confidence", "box": [x1,y1,x2,y2]}``
and ``text_boxes`` (CRAFT) a list of ``[[x1,y1],[x2,y2]]``, both normalised to the
stored image (the authors' scripts opened files without applying EXIF orientation).
Parsing, the normalised-or-pixels rule and the conversion are ``data.boxes``'.
"""

from __future__ import annotations

import json
import math

from minbench.data.boxes import box_items, format_box, to_pixels
from minbench.data.photo import ImageInfo


def best_mineral_box(text: str, info: ImageInfo) -> str | None:
    """The highest-confidence mineral box as manifest text ('' when none; None when unparsable)."""
    items = box_items(text)
    if items is None:
        return None
    best, best_conf = None, -math.inf
    for box, conf in items:
        if box is not None and conf > best_conf:
            best, best_conf = to_pixels(box, info.width, info.height, info.orientation), conf
    return format_box(best)


def text_boxes_pixels(text: str, info: ImageInfo) -> str | None:
    """CRAFT boxes -> ``[[x1,y1,x2,y2], ...]`` in displayed pixels ('' when none; None when unparsable)."""
    if not text:
        return ""
    items = box_items(text)
    if items is None or any(box is None for box, _ in items):
        return None
    return json.dumps([[round(v, 1) for v in to_pixels(box, info.width, info.height, info.orientation)]
                       for box, _ in items])
