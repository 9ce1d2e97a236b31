"""The reference cube: its shape test, sub-pixel outline, perspective edge and face contrast.

Geometry of the cube test. Under orthographic projection a cube with edge ``e`` seen with
three faces has a silhouette that is a centrally symmetric hexagon whose sides are the
projected edge vectors ``a, b, c, -a, -b, -c``. Stacking them as the 2x3 matrix
``M = [a b c]`` gives ``M M^T = e^2 I`` (the first two rows of a rotation matrix, scaled),
so the eigenvalue spread of ``M M^T`` says how cube-like the hexagon is and
``e = sqrt(trace / 2)`` is the edge whatever the rotation. A frontal view (a square) is the
same formula with ``c = 0``. A camera's perspective bends this a little: the final edge
comes from a pin-hole fit (``perspective_edge``: principal point at the photo's centre,
focal length searched) when it fits the outline, as the scale at the cube's centre.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# cv2 is imported inside functions so `minbench --help` stays fast.


@dataclass
class CubeFit:
    """A cube hypothesis for one outline, in the coordinates of the points given."""

    polygon: np.ndarray  # Kx2 silhouette vertices (K = 6 hexagon, 4 frontal square)
    edge_px: float  # cube edge length in pixels (rotation-invariant estimate)
    spread: float  # eigenvalue spread of M M^T: 0 = a perfect orthographic cube
    symmetry: float  # |s_i + s_{i+3}| / mean side: 0 = centrally symmetric
    fit_ratio: float  # polygon area / hull area (>= 1; 1 = the outline is exactly that polygon)
    solidity: float  # outline area / hull area
    face_score: float = 0.0  # contrast between faces over their inner spread
    junction: np.ndarray | None = None  # the three faces' common corner, when three show
    pinhole_rms: float = float("nan")  # RMS error of the pin-hole cube fit / edge

    @property
    def shape_ok(self) -> bool:
        if not (self.spread < 0.3 and self.symmetry < 0.3 and self.fit_ratio < 1.07):
            return False
        # A filled outline must be convex; an open one (edge pixels only, solidity low) may
        # pass when its hull is a near-perfect cube silhouette.
        return self.solidity > 0.88 or (self.spread < 0.1 and self.symmetry < 0.22 and self.fit_ratio < 1.03)

    @property
    def shape_loose(self) -> bool:
        """Cube-like but for one corner off (a shadow or a gap in the outline): worth
        refining on the full-resolution photo, where it must then prove regular."""
        if not (self.spread < 0.3 and self.symmetry < 0.5 and self.fit_ratio < 1.07):
            return False
        return self.solidity > 0.88 or (self.spread < 0.15 and self.fit_ratio < 1.035)

    def regular(self) -> bool:
        """After refinement: the outline is a cube's (centrally symmetric within what
        perspective allows, or fitted by a pin-hole cube to a few per cent)."""
        ev = edge_vectors(self.polygon)
        if ev is None:
            return False
        return ev[1] < 0.25 or (np.isfinite(self.pinhole_rms) and self.pinhole_rms < 0.035)


def _merge_collinear(poly: np.ndarray, max_angle_deg: float = 12.0, min_side: float = 1.5) -> np.ndarray:
    """Drop vertices where the outline goes straight on (or sides shorter than ``min_side``)."""
    pts = [(float(x), float(y)) for x, y in poly]
    cos_max = math.cos(math.radians(max_angle_deg))
    changed = True
    while changed and len(pts) > 3:
        changed = False
        n = len(pts)
        for i in range(n):
            (ax, ay), (bx, by), (cx, cy) = pts[i - 1], pts[i], pts[(i + 1) % n]
            v1x, v1y, v2x, v2y = bx - ax, by - ay, cx - bx, cy - by
            n1, n2 = math.hypot(v1x, v1y), math.hypot(v2x, v2y)
            if n1 < min_side or n2 < min_side or (v1x * v2x + v1y * v2y) / (n1 * n2) > cos_max:
                del pts[i]
                changed = True
                break
    return np.array(pts, dtype=np.float64)


def edge_vectors(poly: np.ndarray) -> tuple[np.ndarray, float] | None:
    """The three (or two) projected edge vectors of a hexagon (parallelogram) and its asymmetry."""
    sides = np.roll(poly, -1, axis=0) - poly
    k = len(poly)
    if k == 6:
        first, second = sides[:3], sides[3:]
    elif k == 4:
        first, second = sides[:2], sides[2:]
    else:
        return None
    mean_len = float(np.linalg.norm(sides, axis=1).mean()) + 1e-9
    symmetry = float(np.linalg.norm(first + second, axis=1).max() / mean_len)
    vecs = (first - second) / 2.0
    if k == 4:
        vecs = np.vstack([vecs, np.zeros((1, 2))])
    return vecs, symmetry


def cube_shape(points: np.ndarray) -> CubeFit | None:
    """Fit a cube silhouette (hexagon or square) to an outline (Nx2 points)."""
    import cv2

    pts = np.asarray(points, dtype=np.float32).reshape(-1, 1, 2)
    if len(pts) < 4:
        return None
    hull = cv2.convexHull(pts)
    hull_area = float(cv2.contourArea(hull))
    if hull_area < 4:
        return None
    solidity = float(cv2.contourArea(pts)) / hull_area
    best = None
    for nsides in (6, 4):
        try:
            approx = cv2.approxPolyN(hull, nsides, epsilon_percentage=-1.0, ensure_convex=True)
        except cv2.error:
            continue
        poly = _merge_collinear(approx.reshape(-1, 2).astype(np.float64))
        ev = edge_vectors(poly)
        if ev is None:
            continue
        vecs, symmetry = ev
        gram = vecs.T @ vecs  # 2x2 = M M^T with M = vecs.T
        tr = float(np.trace(gram))
        if tr <= 0:
            continue
        det = float(np.linalg.det(gram))
        disc = max(tr * tr / 4 - det, 0.0)
        spread = float(2 * np.sqrt(disc) / tr)
        fit_ratio = float(abs(cv2.contourArea(poly.astype(np.float32))) / hull_area)
        fit = CubeFit(polygon=poly, edge_px=float(np.sqrt(tr / 2)), spread=spread, symmetry=symmetry,
                      fit_ratio=fit_ratio, solidity=solidity)
        if best is None or shape_cost(fit) < shape_cost(best):
            best = fit
        if len(poly) == 6 and shape_cost(fit) < 0.3:
            break  # a clean hexagon: no need to try a square
    return best


def shape_cost(fit: CubeFit) -> float:
    return fit.spread + fit.symmetry + 4 * max(fit.fit_ratio - 1.0, 0.0)


def refine_polygon(res: np.ndarray, poly: np.ndarray) -> np.ndarray:
    """Sub-pixel vertices from the image itself, not from a thresholded mask.

    Along each side, profiles across the edge are sampled from ``res`` (the residual
    against the background, float32); the edge sits where the profile falls fastest,
    which for a blurred step is its half-height whatever the threshold was. A line fitted
    to those points per side, intersected with its neighbours, gives the vertices.
    """
    import cv2

    poly = np.asarray(poly, np.float64)
    k = len(poly)
    centre = poly.mean(axis=0)
    mean_side = float(np.linalg.norm(np.roll(poly, -1, 0) - poly, axis=1).mean())
    # the coarse outline can sit well off: downscaling, JPEG ringing, a cast shadow
    reach = max(4.0, min(20.0, 0.25 * mean_side))
    lines = []
    for i in range(k):
        p, q = poly[i], poly[(i + 1) % k]
        d = q - p
        length = float(np.linalg.norm(d))
        if length < 4:
            return poly
        u = d / length
        nrm = np.array([-u[1], u[0]])
        if np.dot(nrm, (p + q) / 2 - centre) < 0:
            nrm = -nrm  # outward
        ts = np.linspace(0.2, 0.8, max(5, min(40, int(length * 0.6))))
        offs = np.arange(-reach, reach + 1e-9, 0.5)
        base = p[None, :] + ts[:, None] * d[None, :]
        grid = base[:, None, :] + offs[None, :, None] * nrm[None, None, :]
        prof = cv2.remap(res, grid[..., 0].astype(np.float32), grid[..., 1].astype(np.float32),
                         cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        grad = prof[:, :-1] - prof[:, 1:]  # falling outward = positive
        j = grad.argmax(axis=1)  # the sharpest step; a cast shadow's border is soft
        ok = (j > 0) & (j < grad.shape[1] - 1) & (grad.max(axis=1) > 0)
        if ok.sum() < 3:
            return poly
        rows = np.nonzero(ok)[0]
        g0, g1, g2 = grad[rows, j[rows] - 1], grad[rows, j[rows]], grad[rows, j[rows] + 1]
        den = g0 - 2 * g1 + g2
        frac = np.where(np.abs(den) > 1e-6, 0.5 * (g0 - g2) / np.where(den == 0, 1, den), 0.0)
        frac = np.clip(frac, -0.5, 0.5)
        off = offs[0] + 0.5 * (j[rows] + 0.5 + frac)  # gradient sits between samples
        pts = base[rows] + off[:, None] * nrm[None, :]
        vx, vy, x0, y0 = cv2.fitLine(pts.astype(np.float32), cv2.DIST_HUBER, 0, 0.01, 0.01).ravel()
        lines.append((np.array([x0, y0], np.float64), np.array([vx, vy], np.float64)))
    out = []
    for i in range(k):
        (p1, d1), (p2, d2) = lines[i - 1], lines[i]
        a = np.array([d1, -d2]).T
        if abs(np.linalg.det(a)) < 1e-3:
            return poly
        s, _ = np.linalg.solve(a, p2 - p1)
        out.append(p1 + s * d1)
    out = np.array(out)
    # a refinement that moves a vertex far is a bad fit, not a better one
    if np.abs(out - poly).max() > 0.35 * mean_side + 1.5:
        return poly
    return out


# Silhouette corners of a unit cube seen with three faces, in the order the hexagon runs
# when its first vertex is next to the near corner N: N+a, N+a+b, N+b, N+b+c, N+c, N+c+a.
_HEX_CORNERS = np.array([[1, 0, 0], [1, 1, 0], [0, 1, 0], [0, 1, 1], [0, 0, 1], [1, 0, 1]], np.float64) - 0.5
_FOVS = (12.0, 20.0, 30.0, 42.0, 60.0, 85.0)  # horizontal fields of view tried (degrees)


def perspective_edge(poly: np.ndarray, width: int, height: int) -> tuple[float, float] | None:
    """Cube edge in pixels at the depth of the cube's centre, by a pin-hole fit.

    The camera's principal point is the photo's centre and its focal length unknown: the
    pose of a unit cube is solved (SQPnP) for the hexagon's corners under each way the
    corners can correspond and a few fields of view; the best fit's ``f / Z`` is the
    scale at the cube's centre, where the specimen is taken to lie. Returns (edge px,
    RMS reprojection error in px), or None when no fit is possible.
    """
    import cv2

    if len(poly) != 6:
        return None
    pts = np.ascontiguousarray(poly, np.float64)

    def solve(img_pts, fov):
        f = width / 2 / np.tan(np.radians(fov) / 2)
        k = np.array([[f, 0, width / 2], [0, f, height / 2], [0, 0, 1]], np.float64)
        try:
            ok, rvec, tvec = cv2.solvePnP(_HEX_CORNERS, img_pts, k, None, flags=cv2.SOLVEPNP_SQPNP)
        except cv2.error:
            return None
        if not ok or tvec[2, 0] <= 0:
            return None
        proj, _ = cv2.projectPoints(_HEX_CORNERS, rvec, tvec, k, None)
        rms = float(np.sqrt(((proj.reshape(-1, 2) - img_pts) ** 2).sum(axis=1).mean()))
        return rms, f / float(tvec[2, 0])

    options = [np.roll(order, -shift, axis=0) for order in (pts, pts[::-1]) for shift in (0, 1)]
    scored = [(solve(o, 30.0), o) for o in options]
    scored = [(r, o) for r, o in scored if r is not None]
    if not scored:
        return None
    _, best_pts = min(scored, key=lambda t: t[0][0])
    fits = [r for r in (solve(best_pts, fov) for fov in _FOVS) if r is not None]
    if not fits:
        return None
    rms, edge = min(fits)
    return edge, rms


def face_contrast(img: np.ndarray, fit: CubeFit) -> tuple[float, np.ndarray | None]:
    """How well the inside splits into flat faces of distinct shading (higher = more cube-like).

    For a hexagon the visible corner shared by the three faces is one of the two
    'Necker' points ``v0 + v2 - v1`` or ``v1 + v3 - v2``; each splits the hexagon into three
    parallelograms. A cube's faces are each nearly uniform and differ from one another.
    """
    import cv2

    poly = fit.polygon
    h, w = img.shape[:2]
    x0, y0 = np.floor(poly.min(axis=0)).astype(int)
    x1, y1 = np.ceil(poly.max(axis=0)).astype(int) + 1
    x0, y0 = max(x0, 0), max(y0, 0)
    x1, y1 = min(x1, w), min(y1, h)
    if x1 - x0 < 3 or y1 - y0 < 3:
        return 0.0, None
    crop = img[y0:y1, x0:x1].reshape(-1, 3).astype(np.float64)
    off = np.array([x0, y0], np.float64)

    def stats(faces: list[np.ndarray]):
        """Mean colour and spread (~ mean absolute deviation, summed over channels) of each
        face, shrunk towards its centre to keep off the edges between faces; one pass."""
        lab = np.zeros((y1 - y0, x1 - x0), np.uint8)
        for k, quad in enumerate(faces, 1):
            c = quad.mean(axis=0)
            cv2.fillConvexPoly(lab, np.round(c + 0.6 * (quad - c) - off).astype(np.int32), k)
        idx = lab.ravel()
        m = len(faces) + 1
        n = np.bincount(idx, minlength=m)[1:].astype(np.float64)
        if (n < 2).any():
            return None
        s1 = np.stack([np.bincount(idx, weights=crop[:, ch], minlength=m)[1:] for ch in range(3)], axis=1)
        s2 = np.stack([np.bincount(idx, weights=crop[:, ch] ** 2, minlength=m)[1:] for ch in range(3)], axis=1)
        mean = s1 / n[:, None]
        std = np.sqrt(np.maximum(s2 / n[:, None] - mean ** 2, 0.0))
        return mean, 0.8 * std.sum(axis=1)  # 0.8 sigma: the mean absolute deviation of a normal

    if len(poly) == 4:
        st = stats([poly])
        if st is None:
            return 0.0, None
        return float(40.0 / (st[1][0] + 4.0)), None  # one flat face: uniformity only
    best, best_j = 0.0, None
    for start in (0, 1):
        v = [poly[(start + i) % 6] for i in range(6)]
        j = v[0] + v[2] - v[1]
        st = stats([np.array([j, v[0], v[1], v[2]]), np.array([j, v[2], v[3], v[4]]),
                    np.array([j, v[4], v[5], v[0]])])
        if st is None:
            continue
        means, spreads = st
        spread_in = float(spreads.mean())
        diffs = sorted(float(np.abs(means[a] - means[b]).sum()) for a, b in ((0, 1), (1, 2), (0, 2)))
        # two of the three pairs must differ: one pair may be lit alike
        score = diffs[1] / (spread_in + 4.0)
        if score > best:
            best, best_j = score, j
    return best, best_j


def flatness(img: np.ndarray, contour: np.ndarray) -> float:
    """Share of an object's inner pixels that are flat (a cube's faces; a rock is textured)."""
    import cv2

    x, y, w, h = cv2.boundingRect(contour.reshape(-1, 1, 2).astype(np.int32))
    if w < 5 or h < 5:
        return 0.0
    m = np.zeros((h, w), np.uint8)
    cv2.drawContours(m, [(contour.reshape(-1, 1, 2) - [x, y]).astype(np.int32)], -1, 1, -1)
    m = cv2.erode(m, np.ones((5, 5), np.uint8))
    if m.sum() < 10:
        return 0.0
    grey = cv2.cvtColor(np.ascontiguousarray(img[y:y + h, x:x + w]), cv2.COLOR_RGB2GRAY).astype(np.float32)
    mag = np.abs(cv2.Sobel(grey, cv2.CV_32F, 1, 0, ksize=3)) + np.abs(cv2.Sobel(grey, cv2.CV_32F, 0, 1, ksize=3))
    return float((mag[m.astype(bool)] < 24).mean())

