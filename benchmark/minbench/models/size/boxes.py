"""Boxes given with a photo (the release's CRAFT text boxes and OWL-ViT mineral boxes)."""

from __future__ import annotations

import json

import numpy as np


def parse_boxes(text_or_list, width: int, height: int, *, with_confidence: bool = False):
    """Release boxes (JSON, normalised or pixels; CRAFT ``[[x1,y1],[x2,y2]]`` or
    ``[x1,y1,x2,y2]``; OWL-ViT ``{"label","confidence","box"}``) to pixel boxes."""
    if text_or_list is None or (isinstance(text_or_list, str) and not text_or_list.strip()):
        return []
    raw = text_or_list
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            return []
    out = []
    if not isinstance(raw, (list, tuple)):
        return []
    for item in raw:
        conf = 1.0
        if isinstance(item, dict):
            conf = float(item.get("confidence", item.get("score", 1.0)) or 0.0)
            item = item.get("box", item.get("bbox"))
        try:
            vals = np.asarray(item, dtype=np.float64).ravel()
        except (TypeError, ValueError):
            continue
        if vals.size != 4 or not np.all(np.isfinite(vals)):
            continue
        x1, y1, x2, y2 = vals
        if max(abs(vals).max(), 0) <= 1.5:  # normalised
            x1, x2 = x1 * width, x2 * width
            y1, y2 = y1 * height, y2 * height
        x1, x2 = sorted((x1, x2))
        y1, y2 = sorted((y1, y2))
        box = [x1, y1, x2, y2]
        out.append((box, conf) if with_confidence else box)
    return out
