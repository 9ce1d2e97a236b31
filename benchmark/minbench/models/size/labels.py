"""Paper labels: a pale flat rectangle with dark text on it is set aside, never measured."""

from __future__ import annotations

import numpy as np

# cv2 is imported inside functions so `minbench --help` stays fast.


def label_score(img: np.ndarray, contour: np.ndarray) -> float:
    """How much an object looks like a paper label: a pale flat rectangle with dark text on it."""
    import cv2

    pts = contour.reshape(-1, 1, 2).astype(np.float32)
    area = float(cv2.contourArea(pts))
    if area < 30:
        return 0.0
    (cx, cy), (rw, rh), _ = cv2.minAreaRect(pts)
    rect_area = max(rw * rh, 1e-6)
    rectangularity = area / rect_area
    if rectangularity < 0.8:  # most objects stop here, cheaply
        return 0.0
    x, y, w, h = cv2.boundingRect(pts.astype(np.int32))
    m = np.zeros((h, w), np.uint8)
    cv2.drawContours(m, [(contour.reshape(-1, 1, 2) - [x, y]).astype(np.int32)], -1, 1, -1)
    px = img[y:y + h, x:x + w][m.astype(bool)].astype(np.float32)
    if len(px) < 10:
        return 0.0
    lum = px.mean(axis=1)
    chroma = float((px.max(axis=1) - px.min(axis=1)).mean())
    paper = float(np.percentile(lum, 75))
    ink = float(((lum < paper - 50) & (lum < 0.7 * paper)).mean())
    score = 0.0
    score += 1.0 if rectangularity > 0.88 else 0.0
    score += 1.0 if paper > 150 and chroma < 45 else 0.0
    score += 1.0 if 0.005 < ink < 0.4 else 0.0
    return score / 3.0
