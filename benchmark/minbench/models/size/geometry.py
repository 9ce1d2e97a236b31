"""Box arithmetic and the specimen extent in pixels (boxes are ``[x1, y1, x2, y2]``)."""

from __future__ import annotations

from typing import Sequence

import numpy as np


def box_of(points: np.ndarray) -> list[float]:
    return [float(points[:, 0].min()), float(points[:, 1].min()), float(points[:, 0].max()), float(points[:, 1].max())]


def inside_fraction(box, others) -> float:
    """Share of ``box``'s area covered by the largest overlapping box in ``others``."""
    area = max((box[2] - box[0]) * (box[3] - box[1]), 1e-9)
    best = 0.0
    for o in others:
        iw = min(box[2], o[2]) - max(box[0], o[0])
        ih = min(box[3], o[3]) - max(box[1], o[1])
        if iw > 0 and ih > 0:
            best = max(best, iw * ih / area)
    return best


def box_area(b) -> float:
    return max(b[2] - b[0], 0.0) * max(b[3] - b[1], 0.0)


def iou(a, b) -> float:
    iw = min(a[2], b[2]) - max(a[0], b[0])
    ih = min(a[3], b[3]) - max(a[1], b[1])
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def gap(a, b) -> float:
    dx = max(a[0] - b[2], b[0] - a[2], 0.0)
    dy = max(a[1] - b[3], b[1] - a[3], 0.0)
    return float(np.hypot(dx, dy))


def extent_of(box: Sequence[float], points: np.ndarray | None, extent: str) -> float:
    """The specimen extent in pixels that the setting ``extent`` asks for."""
    w, h = box[2] - box[0], box[3] - box[1]
    if extent == "longest_side":
        return float(max(w, h))
    if extent == "width":
        return float(w)
    if extent == "height":
        return float(h)
    if extent == "diagonal":
        return float(np.hypot(w, h))
    if points is None or len(points) < 2:
        return float(max(w, h))
    import cv2

    hull = cv2.convexHull(points.astype(np.float32)).reshape(-1, 2).astype(np.float64)
    d = hull[:, None, :] - hull[None, :, :]
    return float(np.sqrt((d ** 2).sum(-1)).max())
