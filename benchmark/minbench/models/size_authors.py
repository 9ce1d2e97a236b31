"""A plain reimplementation of the MineralImage5k authors' cube rule, for side-by-side reports.

Their script finds the reference cube as a contour whose polygon approximation has four
corners, whose perimeter lies in a fixed range and whose bounding rectangle is nearly
square; the cube's edge is a quarter of that perimeter and is taken as the cube's known
edge (their script's: ``FALLBACK_CUBE_EDGE_CM``); the specimen's size is then truncated to
whole centimetres. The thresholds below are our reading of that rule (the script's exact
numbers are not published with the data), with pixel values for photos of about 1024 px on
the long side, scaled for other sizes.

To compare the cube rules and nothing else, the specimen box is given by the caller (the
same box our estimator uses), as the authors took theirs from OWL-ViT boxes; contours
inside it or inside a label box are not searched, as they masked the specimen and the
CRAFT text boxes before looking for the cube.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from minbench.models.size.settings import FALLBACK_CUBE_EDGE_CM


@dataclass(frozen=True)
class AuthorsRule:
    """Settings of the authors' contour rule."""

    cube_edge_cm: float = FALLBACK_CUBE_EDGE_CM  # the dataset's edge, when it gives one
    min_perimeter: float = 40.0  # px, at 1024 px long side
    max_perimeter: float = 480.0
    squareness: float = 0.2  # |w/h - 1| of the bounding rectangle
    approx_epsilon: float = 0.04  # approxPolyDP tolerance, fraction of the perimeter
    canny: tuple[int, int] = (50, 150)
    truncate: bool = True  # whole centimetres, as their script writes them


@dataclass
class AuthorsEstimate:
    size_cm: float = float("nan")
    px_per_cm: float = float("nan")
    square: list[list[float]] | None = None
    reason: str = ""


def authors_estimate(image: np.ndarray, specimen_bbox, rule: AuthorsRule | None = None,
                     exclude_boxes=()) -> AuthorsEstimate:
    """Size by the authors' rule for one photo (uint8 HxWx3) and a specimen box [x1,y1,x2,y2];
    outlines centred in the specimen box or in ``exclude_boxes`` (labels) are skipped."""
    import cv2

    rule = rule or AuthorsRule()
    img = np.asarray(image)
    if img.ndim == 2:
        grey = img
    else:
        grey = cv2.cvtColor(np.ascontiguousarray(img[:, :, :3]), cv2.COLOR_RGB2GRAY)
    h, w = grey.shape[:2]
    if min(h, w) < 16:
        return AuthorsEstimate(reason="image too small")
    k = max(h, w) / 1024.0
    edges = cv2.Canny(cv2.GaussianBlur(grey, (5, 5), 0), *rule.canny)
    edges = cv2.dilate(edges, np.ones((3, 3), np.uint8))
    contours, _ = cv2.findContours(edges, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
    masked = [b for b in [specimen_bbox, *exclude_boxes] if b is not None]
    best = None
    for c in contours:
        peri = cv2.arcLength(c, True)
        if not (rule.min_perimeter * k <= peri <= rule.max_perimeter * k):
            continue
        approx = cv2.approxPolyDP(c, rule.approx_epsilon * peri, True)
        if len(approx) != 4:
            continue
        cx, cy = approx.reshape(-1, 2).mean(axis=0)
        if any(b[0] <= cx <= b[2] and b[1] <= cy <= b[3] for b in masked):
            continue
        _, _, bw, bh = cv2.boundingRect(approx)
        if bh == 0 or abs(bw / bh - 1.0) > rule.squareness:
            continue
        if best is None or peri > best[0]:  # the largest square-looking outline
            best = (peri, approx)
    if best is None:
        return AuthorsEstimate(reason="no square contour")
    peri, approx = best
    px_per_cm = (peri / 4.0) / rule.cube_edge_cm
    out = AuthorsEstimate(px_per_cm=float(px_per_cm), square=approx.reshape(-1, 2).astype(float).tolist())
    if specimen_bbox is None:
        out.reason = "no specimen box"
        return out
    x1, y1, x2, y2 = specimen_bbox
    size = max(x2 - x1, y2 - y1) / px_per_cm
    out.size_cm = float(math.floor(size)) if rule.truncate else float(size)
    return out
