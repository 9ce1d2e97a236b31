"""Galleries: a photo with the estimator's cube, specimen and labels drawn."""

from __future__ import annotations

import numpy as np

from minbench.models.size.estimator import as_rgb_uint8
from minbench.models.size.settings import SizeEstimate


def draw_estimate(image, est: SizeEstimate, *, true_cm: float | None = None,
                  true_bbox=None, true_cube=None) -> np.ndarray:
    """The photo with the detected cube, specimen and labels drawn (RGB uint8), for galleries."""
    import cv2

    img, _ = as_rgb_uint8(image)
    out = img.copy()
    t = max(1, round(max(out.shape[:2]) / 400))
    if true_bbox is not None:
        b = np.round(true_bbox).astype(int)
        cv2.rectangle(out, (b[0], b[1]), (b[2], b[3]), (255, 255, 255), t, cv2.LINE_AA)
    if true_cube is not None:
        b = np.round(true_cube).astype(int)
        cv2.rectangle(out, (b[0], b[1]), (b[2], b[3]), (255, 255, 255), t, cv2.LINE_AA)
    for b in est.label_boxes:
        b = np.round(b).astype(int)
        cv2.rectangle(out, (b[0], b[1]), (b[2], b[3]), (60, 120, 255), t, cv2.LINE_AA)
    if est.specimen_bbox is not None:
        b = np.round(est.specimen_bbox).astype(int)
        cv2.rectangle(out, (b[0], b[1]), (b[2], b[3]), (0, 220, 0), t + 1, cv2.LINE_AA)
    for poly in est.candidates:
        cv2.polylines(out, [np.round(poly).astype(np.int32)], True, (255, 200, 0), t, cv2.LINE_AA)
    if est.cube_polygon is not None:
        cv2.polylines(out, [np.round(est.cube_polygon).astype(np.int32)], True, (255, 0, 255), t + 1, cv2.LINE_AA)
    return out
