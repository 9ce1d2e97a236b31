"""Background model and object masks of a museum photo (the first step of scene parsing).

Scene parsing runs on a downscaled working copy (``work_size`` px on the long side); the
cube, whose edge sets the scale of every size reported, is re-measured on a small
full-resolution crop (``cube``) against this background model.

Objects are found in several masks at once (``object_masks``): colour difference from a
background model with the objects painted out, the same without cast shadows, and regions
closed by image edges. A cube face lit like the background drops out of one mask and not
of another; a soft shadow joins the cube in the colour masks but has no sharp edge.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

# cv2 is imported inside functions so `minbench --help` stays fast.


@dataclass
class Background:
    """A smooth background colour model: a thumbnail with the objects painted out.

    Coordinates are pixel centres normalised to [0, 1] over the image the model was fitted
    on (``u = (x + 0.5) / W``), so one model serves the working copy, the full-resolution
    photo and any crop of it.
    """

    tiny: np.ndarray  # th x tw x 3 float32 background thumbnail
    su: float  # thumbnail pixels per unit of u
    sv: float  # thumbnail pixels per unit of v
    threshold: float  # residual (sum of |channel diff|) above which a pixel is foreground
    noise: float  # robust spread of the background residual
    is_flat: bool  # the whole image is one colour (blank)
    _tiny8: np.ndarray | None = field(default=None, repr=False)

    def render(self, width: int, height: int, *, x0: int = 0, y0: int = 0,
               full_w: int | None = None, full_h: int | None = None) -> np.ndarray:
        """Background (uint8 HxWx3) of the ``width`` x ``height`` crop at (x0, y0) of an image
        ``full_w`` x ``full_h`` (the crop is the whole image by default)."""
        import cv2

        full_w = full_w or width
        full_h = full_h or height
        ax, ay = self.su / full_w, self.sv / full_h
        # destination pixel x -> thumbnail coordinate ((x0 + x + 0.5) / full_w) * su - 0.5
        m = np.array([[ax, 0.0, (x0 + 0.5) * ax - 0.5], [0.0, ay, (y0 + 0.5) * ay - 0.5]], np.float64)
        return cv2.warpAffine(self.tiny8, m, (width, height), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                              borderMode=cv2.BORDER_REPLICATE)

    @property
    def tiny8(self) -> np.ndarray:
        if self._tiny8 is None:
            self._tiny8 = np.clip(self.tiny, 0, 255).round().astype(np.uint8)
        return self._tiny8


@lru_cache(maxsize=16)
def _grid_features(tw: int, th: int) -> tuple[np.ndarray, np.ndarray]:
    ys, xs = np.divmod(np.arange(tw * th), tw)
    u, v = (xs + 0.5) / tw, (ys + 0.5) / th
    feats = np.stack([np.ones_like(u), u, v, u * u, u * v, v * v], axis=1).astype(np.float32)
    border = max(1, round(0.06 * min(tw, th)))
    on_border = (xs < border) | (xs >= tw - border) | (ys < border) | (ys >= th - border)
    return feats, on_border


def _median(x: np.ndarray) -> float:
    return float(np.partition(x, len(x) // 2)[len(x) // 2]) if len(x) else 0.0


def _paint_out(img8: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """Fill ``hole`` (1 = object) from the surrounding background by normalised convolution
    at two scales (near pixels first, far ones where a hole is wide); float32 result."""
    import cv2

    keep = (1 - hole).astype(np.float32)
    img = img8.astype(np.float32)
    out = img * keep[..., None]
    filled = None
    for sigma in (2.0, 8.0):
        num = cv2.GaussianBlur(out, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)
        den = cv2.GaussianBlur(keep, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)
        est = num / np.maximum(den, 1e-6)[..., None]
        if filled is None:
            filled, ok = est, den > 0.15
        else:
            filled = np.where(ok[..., None], filled, est)
            ok = ok | (den > 1e-4)
    model = np.where(hole[..., None].astype(bool), filled, img)
    return cv2.GaussianBlur(model, (3, 3), 0)


def fit_background(img: np.ndarray, *, min_threshold: float = 24.0, k_noise: float = 6.0,
                   grid: int = 64) -> Background:
    """Model the background of a photo (uint8 HxWx3) without its objects.

    Museum backgrounds are smooth: gradients, a lamp's bright patch, vignetting, cloth
    folds. On a thumbnail of about ``grid`` pixels a quadratic surface is first fitted
    robustly from the frame's border inwards (the objects sit inside the frame); what
    stands out from it is painted out (``cv2.inpaint``) from its surroundings, twice, so
    the model follows folds and light a quadratic cannot. The noise level, which sets the
    foreground threshold, is measured on ``img`` itself (the thumbnail averages it away).
    """
    import cv2

    h, w = img.shape[:2]
    f = max(1, -(-max(h, w) // grid))  # integer factor: cv2's fast area-averaging path
    tw, th = max(2, w // f), max(2, h // f)
    tiny8 = cv2.resize(np.ascontiguousarray(img[: th * f, : tw * f]), (tw, th), interpolation=cv2.INTER_AREA)
    tiny = tiny8.reshape(-1, 3).astype(np.float32)
    feats, sel = _grid_features(tw, th)
    coef = np.zeros((6, 3), np.float32)
    thr = min_threshold
    res = np.zeros(len(tiny), np.float32)
    for _ in range(3):
        if sel.sum() < 12:
            break
        a = feats[sel]
        coef = np.linalg.solve(a.T @ a + 1e-6 * np.eye(6, dtype=np.float32), a.T @ tiny[sel]).astype(np.float32)
        res = np.abs(tiny - feats @ coef).sum(axis=1)
        thr = max(min_threshold, k_noise * _median(res[sel]))
        sel = res < thr
    model = (feats @ coef).reshape(th, tw, 3)
    objects = (res >= thr).reshape(th, tw).astype(np.uint8)
    kernel = np.ones((3, 3), np.uint8)
    for _ in range(2):
        hole = cv2.dilate(objects, kernel, iterations=2)
        if hole.mean() > 0.85:  # nearly all 'object': keep the smooth surface
            break
        model = _paint_out(tiny8, hole)
        res = np.abs(tiny8.astype(np.float32) - model).sum(axis=2)
        free = res[hole == 0]
        thr = max(min_threshold, k_noise * _median(free)) if free.size else thr
        objects = (res >= thr).astype(np.uint8)
    bg = Background(tiny=np.ascontiguousarray(model, dtype=np.float32), su=w / f, sv=h / f,
                    threshold=float(thr), noise=0.0, is_flat=float(np.ptp(tiny8)) < 6.0)
    res = residual(img[::3, ::3], bg, full_w=None, full_h=None)
    bgpix = res[res < thr]
    if bgpix.size > 50:
        med = _median(bgpix)
        mad = _median(np.abs(bgpix - med))
        bg.noise = med + 1.4826 * mad
        bg.threshold = max(min_threshold, k_noise * bg.noise)
    return bg


def object_masks(img: np.ndarray, bg: Background, *, canny: tuple[int, int] = (20, 60)) -> dict[str, np.ndarray]:
    """Masks (uint8 0/255) of what is not background, two ways and their union.

    ``strong``: colour differs from the background model by more than its threshold;
    ``edges``: regions enclosed by closed image edges (Canny), which keep a cube face that
    is lit like the background, or a pale crystal, as long as its outline shows, and leave
    out soft shadows, which have no sharp outline;
    ``smooth``: ``edges`` opened, so the filled regions lose thin spurs;
    ``solid``: ``strong`` without what looks like a cast shadow (the background's own
    colour, darker);
    ``union``: ``strong`` and ``edges``.
    """
    import cv2

    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3))
    model = bg.render(img.shape[1], img.shape[0])
    res = residual(img, bg, model=model)
    strong = cv2.morphologyEx((res > bg.threshold).astype(np.uint8) * 255, cv2.MORPH_OPEN, kernel)
    # A cast shadow is the background, darker, with its colour: the same ratio in every channel.
    r0, r1, r2 = cv2.split(cv2.divide(cv2.add(img, 4, dtype=cv2.CV_32F), cv2.add(model, 4, dtype=cv2.CV_32F)))
    rmax, rmin = cv2.max(cv2.max(r0, r1), r2), cv2.min(cv2.min(r0, r1), r2)
    shadow = (rmax - rmin < 0.1) & (rmax < 0.95) & (rmin > 0.2)
    solid = cv2.morphologyEx(np.where(shadow, 0, strong).astype(np.uint8), cv2.MORPH_OPEN, kernel)
    grey = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    # closing with a 5x5 square bridges the one- and two-pixel gaps an outline has where a
    # face is lit like the background
    edges = cv2.morphologyEx(cv2.Canny(grey, *canny), cv2.MORPH_CLOSE, np.ones((5, 5), np.uint8))
    contours, _ = cv2.findContours(edges, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    filled = np.zeros_like(edges)
    cv2.drawContours(filled, contours, -1, 255, -1)
    # ``edges`` keeps open outlines too (thin lines): they still span their object's box
    # the filled regions without spurs (bits of a shadow's border stuck to an outline)
    smooth = cv2.morphologyEx(filled, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (7, 7)))
    return {"strong": strong, "solid": solid, "edges": filled, "smooth": smooth,
            "union": cv2.morphologyEx(cv2.bitwise_or(strong, filled), cv2.MORPH_OPEN, kernel)}


def residual(img: np.ndarray, bg: Background, *, x0: int = 0, y0: int = 0,
             full_w: int | None = None, full_h: int | None = None, model: np.ndarray | None = None) -> np.ndarray:
    """Sum over channels of |image - background| (int16 HxW) for a crop at (x0, y0)."""
    import cv2

    h, w = img.shape[:2]
    if model is None:
        model = bg.render(w, h, x0=x0, y0=y0, full_w=full_w, full_h=full_h)
    d0, d1, d2 = cv2.split(cv2.absdiff(np.ascontiguousarray(img), model))
    return cv2.add(cv2.add(d0, d1, dtype=cv2.CV_16S), d2, dtype=cv2.CV_16S)

