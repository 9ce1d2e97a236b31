"""Pixels of one photograph from its :class:`~minbench.data.synth.scene.Scene`.

Geometry: a pin-hole camera of horizontal field of view ``fov_deg`` (20-40 degrees). The
cube is drawn in true perspective, three faces visible; ``px_per_cm`` is the scale of the
plane through its centre. The specimen stands ``depth_cm`` farther from the camera than the
cube (in front when negative), so it is drawn at its own plane's scale, which the cube does
not give. Its truth ``size_cm`` is its longest physical dimension in 3-D (calipers across
the matrix's thickness and the crystals' depth included, recorded to ``SIZE_ROUND_CM``),
not the 2-D box a photo shows. The specimen itself is drawn with an orthographic pose at
its plane's scale (its own depth is small against the camera distance). Beside the RGB image a
label map records which object owns each pixel, so the truth (mask, boxes) is exact.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache

import cv2
import numpy as np

from minbench.data.synth.canvas import CRYSTAL, MATRIX, SATELLITE, SHIFT
from minbench.data.synth.framing import frame_layout, frame_scales
from minbench.data.synth.meshes import Placed, place, visible_faces
from minbench.data.synth.props import cube_outline, draw_cube, draw_label, label_layout
from minbench.data.synth.scene import ROCKS, SIZE_ROUND_CM, Scene
from minbench.data.synth.settle import ROOT_DEPTH, longest_dimension, settle, specimen_points
from minbench.data.synth.shading import face_colours


@dataclass
class Truth:
    bbox: tuple[int, int, int, int]          # specimen: matrix + crystals + satellites, [x1, y1, x2, y2) pixels
    cube_bbox: tuple[float, float, float, float] | None   # None: no cube in the photo
    text_boxes: list[tuple[int, int, int, int]]
    px_per_cm: float                          # scale of the plane through the cube's centre
    size_cm: float                            # the specimen's longest physical (3-D) dimension
    mask_pixels: int


# ---------------------------------------------------------------- background, matrix, shadows
@lru_cache(maxsize=4)
def _noise_bank(height: int, width: int) -> np.ndarray:
    # One fixed field per resolution, cropped at a random offset per image: cheaper than fresh noise
    # and just as deterministic.
    return np.random.default_rng(20240917).standard_normal((height + 64, width + 64, 3), dtype=np.float32)


def _smooth_noise(rng: np.random.Generator, h: int, w: int, cells: int) -> np.ndarray:
    """Low-frequency noise in [-1, 1] of shape (h, w)."""
    gh, gw = max(2, cells * h // max(h, w)), max(2, cells * w // max(h, w))
    grid = rng.uniform(-1, 1, (gh, gw)).astype(np.float32)
    return cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC)


@dataclass
class Shadows:
    """The soft shadows one surface (the backdrop, the matrix) receives, polygons in pixels: what
    stands on it casts a shadow away from the light (``cast``, each polygon already shifted),
    and darkens it where the two meet (``contact``: the bodies' own outlines, tightly blurred:
    little light reaches the crease between a body and what it rests on)."""

    cast: list = field(default_factory=list)
    cast_blur: float = 1.0            # Gaussian sigma, pixels
    contact: list = field(default_factory=list)
    contact_blur: float = 1.0


def _keep(shadows: Shadows, grid: tuple[int, int], box: tuple[int, int, int, int],
          strength: tuple[float, float]) -> np.ndarray:
    """The share of light left (0..1) on a coarse ``grid`` (rows, cols) laid over ``box`` (pixels),
    under ``strength`` (cast, contact) of darkening."""
    gh, gw = grid
    x1, y1, x2, y2 = box
    scale = np.array([gw / (x2 - x1), gh / (y2 - y1)])
    keep = np.ones(grid, np.float32)
    for polys, blur, k in ((shadows.cast, shadows.cast_blur, strength[0]),
                           (shadows.contact, shadows.contact_blur, strength[1])):
        if not len(polys):
            continue
        m = np.zeros(grid, np.float32)
        for p in polys:   # one at a time: several in one call would fill by the even-odd rule
            # pixel centres of the coarse grid, as cv2.resize maps it back onto the full one
            pts = np.round(((p - (x1, y1) + 0.5) * scale - 0.5) * (1 << SHIFT)).astype(np.int32)
            cv2.fillPoly(m, [pts], 1.0, shift=SHIFT)
        m = cv2.GaussianBlur(m, (0, 0), max(0.5, blur * float(scale[0])))
        keep *= 1 - k * m
    return keep


def draw_background(scene: Scene, rng: np.random.Generator, shadows: Shadows | None = None) -> np.ndarray:
    """Backdrop (gradient, lamp patch, cloth folds, vignette) with the objects' soft shadows.

    Everything here is smooth, so it is computed at quarter resolution and resized once.
    """
    h, w = scene.height, scene.width
    q = 4
    sh, sw = max(2, h // q), max(2, w // q)
    top, bottom = scene.bg_colours
    t = np.linspace(0, 1, sh, dtype=np.float32)[:, None, None]
    xs = np.linspace(0, 1, sw, dtype=np.float32)[None, :, None]
    ys = t
    cx = rng.uniform(0.3, 0.7)
    spot = 1.0 + 0.12 * np.exp(-((xs - cx) ** 2) / 0.08)   # the lamp's brighter patch
    small = (top[None, None, ::-1] * (1 - t) + bottom[None, None, ::-1] * t) * spot   # BGR
    if scene.background == "cloth":  # soft folds of a velvet cloth
        small = small * (1 + 0.25 * _smooth_noise(rng, sh, sw, 6)[..., None])
    small = small * (1 - scene.vignette * ((xs - 0.5) ** 2 + (ys - 0.5) ** 2) / 0.5)
    if shadows is not None:
        # a shadow shows less on a dark backdrop (less light to take away)
        strength = (0.55, 0.7) if scene.background in ("grey", "white", "cloth") else (0.25, 0.4)
        small = small * _keep(shadows, (sh, sw), (0, 0, w, h), strength)[..., None]
    small = np.clip(small * 255, 0, 255).astype(np.uint8)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def _blob_polygon(scene: Scene, centre: np.ndarray, k: float) -> np.ndarray:
    n = len(scene.matrix_shape)
    theta = np.linspace(0, 2 * math.pi, n, endpoint=False)
    pts = np.stack([np.cos(theta), np.sin(theta) * scene.matrix_aspect], 1) * scene.matrix_shape[:, None]
    # Smooth the outline: a closed Catmull-like resampling by cubic interpolation.
    ext = np.concatenate([pts[-3:], pts, pts[:3]])
    idx = np.linspace(3, n + 3, n * 4, endpoint=False)
    i0 = np.floor(idx).astype(int)
    f = (idx - i0)[:, None]
    p0, p1, p2, p3 = ext[i0 - 1], ext[i0], ext[i0 + 1], ext[i0 + 2]
    smooth = 0.5 * ((2 * p1) + (-p0 + p2) * f + (2 * p0 - 5 * p1 + 4 * p2 - p3) * f ** 2
                    + (-p0 + 3 * p1 - 3 * p2 + p3) * f ** 3)
    return smooth * k + centre


def _roi(box, w: int, h: int, pad: int = 2) -> tuple[int, int, int, int]:
    x1, y1, x2, y2 = box
    return (max(0, int(math.floor(x1)) - pad), max(0, int(math.floor(y1)) - pad),
            min(w, int(math.ceil(x2)) + pad), min(h, int(math.ceil(y2)) + pad))


def draw_matrix(img: np.ndarray, labels: np.ndarray, poly: np.ndarray, scene: Scene,
                rng: np.random.Generator, shadows: Shadows | None = None) -> None:
    h, w = labels.shape
    x1, y1, x2, y2 = _roi((*poly.min(0), *poly.max(0)), w, h)
    if x2 - x1 < 2 or y2 - y1 < 2:
        return
    rw, rh = x2 - x1, y2 - y1
    mask = np.zeros((rh, rw), np.uint8)
    pts = np.round((poly - [x1, y1]) * (1 << SHIFT)).astype(np.int32)
    cv2.fillPoly(mask, [pts], 255, lineType=cv2.LINE_8, shift=SHIFT)
    if scene.rock == "own":   # massive material of the mineral itself: its hue, darker, grainier
        own = np.asarray(scene.own_rock_rgb) * 255
        base, speckles = tuple(own), (tuple(own * 0.6), tuple(np.minimum(own * 1.3, 255)), tuple(own * 0.85))
    else:
        base, speckles = ROCKS[scene.rock]
    base = np.array(base[::-1], np.float32)   # RGB -> BGR
    # Shading at quarter resolution (it is smooth): blotches, light across the blob, a darker rim.
    sw, sh = max(4, rw // 4), max(4, rh // 4)
    small = cv2.resize(mask, (sw, sh), interpolation=cv2.INTER_AREA).astype(np.float32) / 255
    yy, xx = np.mgrid[0:sh, 0:sw].astype(np.float32)
    lx, ly = scene.light[0], scene.light[1]
    ramp = ((xx / sw - 0.5) * lx + (yy / sh - 0.5) * ly) / (abs(lx) + abs(ly) + 1e-6)
    rim = cv2.GaussianBlur(small, (0, 0), max(1.0, min(sw, sh) / 10))
    shade = ((1 + 0.18 * _smooth_noise(rng, sh, sw, 8)) * (0.8 + 0.45 * ramp)
             * (0.55 + 0.45 * np.sqrt(np.clip(rim, 0, 1))))
    if shadows is not None:   # the crystals standing on it
        shade = shade * _keep(shadows, (sh, sw), (x1, y1, x2, y2), (0.45, 0.6))
    shade = cv2.resize(shade, (rw, rh), interpolation=cv2.INTER_LINEAR)
    # The rock's grain: 2-3 px blobs (sensor noise comes later, in ``camera``).
    grain = _noise_bank(h, w)[y1 // 2:y1 // 2 + (rh + 1) // 2, x1 // 2:x1 // 2 + (rw + 1) // 2, 1]
    shade = cv2.scaleAdd(cv2.resize(grain, (rw, rh), interpolation=cv2.INTER_LINEAR), 0.05,
                         shade.astype(np.float32))
    out = cv2.multiply(cv2.cvtColor(shade, cv2.COLOR_GRAY2BGR), tuple(float(v) for v in base) + (0.0,),
                       dtype=cv2.CV_8U)
    r_max = max(1, int(min(rw, rh) / 90))
    n_spk = int(min(300, 0.12 * rw * rh / (math.pi * ((r_max + 1) / 2) ** 2 + 1)))
    if n_spk:
        sx, sy = rng.integers(0, rw, n_spk), rng.integers(0, rh, n_spk)
        sr, sc = rng.integers(1, r_max + 1, n_spk), rng.integers(0, len(speckles), n_spk)
        cols = [tuple(float(v) for v in base * 0.4 + np.array(c[::-1], np.float32) * 0.6) for c in speckles]
        for x, y, r, c in zip(sx.tolist(), sy.tolist(), sr.tolist(), sc.tolist()):
            cv2.circle(out, (x, y), r, cols[c], -1, cv2.LINE_AA)
    cv2.copyTo(out, mask, img[y1:y2, x1:x2])
    cv2.fillPoly(labels, [np.round(poly * (1 << SHIFT)).astype(np.int32)], MATRIX, lineType=cv2.LINE_8, shift=SHIFT)


# ---------------------------------------------------------------- crystals
def draw_crystal(img: np.ndarray, labels: np.ndarray, placed: Placed, colours: np.ndarray,
                 alpha: float, label_value: int, edges: float = 0.0) -> None:
    """Paint a posed crystal face by face; ``edges`` > 0 lightens its outlines (glassy crystals)."""
    h, w = labels.shape
    faces = visible_faces(placed)
    if not faces:
        return
    x1, y1, x2, y2 = _roi(placed.bounds(), w, h)
    if x2 <= x1 or y2 <= y1:
        return
    target = img[y1:y2, x1:x2]
    layer = target.copy() if alpha < 1 else target
    lab = labels[y1:y2, x1:x2]
    off = np.array([x1, y1], np.int32) * (1 << SHIFT)
    bgr = np.clip(colours[:, ::-1] * 255, 0, 255).astype(np.int32).tolist()   # RGB -> BGR, all faces at once
    for f, tris, _ in faces:
        col = tuple(bgr[f])
        # One triangle per call: fillPoly with several polygons fills by the even-odd rule, so
        # overlapping coplanar triangles (interpenetrating twins) would cancel into outlines.
        for tri in tris - off:
            cv2.fillConvexPoly(layer, tri, col, lineType=cv2.LINE_8, shift=SHIFT)
            cv2.fillConvexPoly(lab, tri, label_value, lineType=cv2.LINE_8, shift=SHIFT)
        if edges > 0 and placed.mesh.face_edges:
            seg = placed.mesh.face_edges[f]
            if len(seg):
                lines = np.round(placed.xy[seg] * (1 << SHIFT)).astype(np.int32) - off
                light = tuple(c + (255 - c) * edges for c in col)
                cv2.polylines(layer, list(lines), False, light, 1, cv2.LINE_AA, shift=SHIFT)
    if alpha < 1:
        cv2.addWeighted(layer, alpha, target, 1 - alpha, 0, dst=target)


# ---------------------------------------------------------------- the photograph
def _texture(img: np.ndarray, labels: np.ndarray, box, scene: Scene, rng: np.random.Generator) -> None:
    """Striations (fine parallel grooves) or etch pits on the crystal pixels inside ``box``."""
    h, w = labels.shape
    x1, y1, x2, y2 = _roi(box, w, h)
    if x2 - x1 < 4 or y2 - y1 < 4:
        return
    mask = labels[y1:y2, x1:x2] == CRYSTAL
    if not mask.any():
        return
    yy, xx = np.mgrid[y1:y2, x1:x2].astype(np.float32)
    if scene.texture == "striated":
        th = rng.uniform(0, math.pi)
        period = max(2.5, rng.uniform(3, 7) * w / 1024)
        mod = 1 + 0.09 * np.sin(2 * math.pi * (xx * math.cos(th) + yy * math.sin(th)) / period)
    else:
        mod = np.ones_like(xx)
        n = int(mask.sum() / max(60.0, (w / 256) ** 2 * 60))
        py, px = np.nonzero(mask)
        pick = rng.choice(len(py), min(n, len(py)), replace=False)
        mod[py[pick], px[pick]] = rng.uniform(0.55, 0.8, len(pick))
        mod = cv2.GaussianBlur(mod, (0, 0), max(0.6, w / 1024))
    roi = img[y1:y2, x1:x2]
    roi[mask] = np.clip(roi[mask].astype(np.float32) * mod[mask][:, None], 0, 255).astype(np.uint8)




def render(scene: Scene, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, Truth]:
    """The photo (BGR uint8, before JPEG), the label map and the truth."""
    # 1. the specimen in matrix-radius units, to know its extent and its 3-D size
    blob = _blob_polygon(scene, np.zeros(2), 1.0) if scene.matrix else np.zeros((0, 2))
    unit = [place(c.mesh, c.rotation, c.size, c.offset, c.stretch) for c in scene.crystals]
    settle(scene, blob, unit)
    pts = np.concatenate([blob] + [u.xy for u in unit])
    lo, hi = pts.min(0), pts.max(0)
    ex, ey = hi - lo
    r_cm = scene.size_cm / longest_dimension(specimen_points(scene, blob, unit))   # cm per unit
    k, ppc, side, box = frame_scales(scene, ex, ey, r_cm)
    spec_w, spec_h = ex * k, ey * k
    # 2. where the specimen and the cube go
    origin, cube_c = frame_layout(scene, side, box, lo, k, ppc, spec_w, spec_h, rng)
    for u in unit:
        u.xy = u.xy * k + origin
        u.z = u.z * k
        u.lift = u.lift * k
    blob_px = blob * k + origin
    # 3. the scene's pixels, then the paper label where nothing else is
    img, labels, cube_box = _paint(scene, blob_px, unit, cube_c, ppc, spec_w, spec_h, rng)
    spec_mask = ((labels == MATRIX) | (labels == CRYSTAL) | (labels == SATELLITE)).astype(np.uint8)
    bx, by, bw_, bh_ = cv2.boundingRect(spec_mask)
    bbox = (bx, by, bx + bw_, by + bh_)
    text_boxes = _place_label(img, labels, scene, bbox, cube_box, rng)
    size = scene.size_cm if not SIZE_ROUND_CM else round(scene.size_cm / SIZE_ROUND_CM) * SIZE_ROUND_CM
    truth = Truth(bbox=bbox, cube_bbox=cube_box, text_boxes=text_boxes, px_per_cm=float(ppc),
                  size_cm=float(size), mask_pixels=int((labels == CRYSTAL).sum()))
    return img, labels, truth


def _shadows(scene: Scene, blob_px: np.ndarray, unit: list[Placed], cube: np.ndarray | None, spec_w: float,
             spec_h: float) -> tuple[Shadows, Shadows]:
    """The shadows on the backdrop and on the matrix, all thrown away from the one light.

    On the backdrop: the specimen and the cube each cast a soft shadow (offset by 6% of their
    smaller extent, as a museum's broad lamps give) and darken the crease where they rest on it
    (the matrix's outline; the crystals' when there is no matrix). On the matrix: each crystal
    casts a shadow as long as it stands proud of it and darkens the crease at its foot.
    """
    away = -scene.light[:2] / max(1e-3, -scene.light[2])    # shadow shift per unit of height
    hulls = [cv2.convexHull(u.xy.astype(np.float32))[:, 0, :] for u in unit]
    spec = min(spec_w, spec_h)
    off = away * 0.06 * spec
    standing = [blob_px] if scene.matrix else hulls
    cast = [p + off for p in ([blob_px] if scene.matrix else []) + hulls]
    contact = [p + 0.25 * off for p in standing]
    if cube is not None:
        cube_off = away * 0.06 * float(min(np.ptp(cube, axis=0)))
        cast.append(cube + cube_off)
        contact.append(cube + 0.25 * cube_off)
    backdrop = Shadows(cast, 0.05 * spec + 1, contact, 0.012 * spec + 1)
    if not scene.matrix or not unit:
        return backdrop, Shadows()
    # a crystal stands proud of the matrix by what is not rooted (``settle.rooted``), more if lifted
    shifts = [away * 0.3 * ((1 - ROOT_DEPTH) * float(np.ptp(u.z)) - u.lift) for u in unit]
    sizes = [float(max(np.ptp(u.xy, axis=0))) for u in unit]
    reach = float(np.median([np.hypot(*t) for t in shifts]))
    matrix = Shadows([p + t for p, t in zip(hulls, shifts)], 0.3 * reach + 0.01 * spec + 1,
                     [p + 0.1 * t for p, t in zip(hulls, shifts)], 0.04 * float(np.median(sizes)) + 1)
    return backdrop, matrix


def _paint(scene: Scene, blob_px: np.ndarray, unit: list[Placed], cube_c, ppc: float, spec_w: float,
           spec_h: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, tuple | None]:
    """Backdrop with shadows, then (a cube behind) matrix, crystals (back to front), cube: the
    image, the label map and the cube's box inside the frame (None without a cube)."""
    w, h = scene.width, scene.height
    has_cube = scene.cube_mode != "absent"
    on_backdrop, on_matrix = _shadows(scene, blob_px, unit, cube_outline(scene, cube_c, ppc) if has_cube else None,
                                      spec_w, spec_h)
    img = draw_background(scene, rng, on_backdrop)
    labels = np.zeros((h, w), np.uint8)
    cube_box = None
    if scene.cube_mode == "occluded":
        cube_box = draw_cube(img, labels, scene, cube_c, ppc)
    if scene.matrix:
        draw_matrix(img, labels, blob_px, scene, rng, on_matrix)
    # Crystals nearer the top of the picture stand behind the lower ones (they grow back from the
    # viewer); those lifted onto others lie in front of them.
    order = sorted(range(len(unit)), key=lambda i: (unit[i].lift < 0, unit[i].xy[:, 1].max()))
    for i in order:
        c, u = scene.crystals[i], unit[i]
        cols = face_colours(u, c.rgb, c.rgb2, scene.light, c.lustre, rng)
        glassy = {"vitreous": 0.3, "adamantine": 0.45}.get(c.lustre, 0.0)
        draw_crystal(img, labels, u, cols, c.alpha, SATELLITE if c.satellite else CRYSTAL, edges=glassy)
    if scene.texture != "smooth":
        own = [unit[i].bounds() for i, c in enumerate(scene.crystals) if not c.satellite]
        box = (min(b[0] for b in own), min(b[1] for b in own), max(b[2] for b in own), max(b[3] for b in own))
        _texture(img, labels, box, scene, rng)
    if has_cube and scene.cube_mode != "occluded":
        cube_box = draw_cube(img, labels, scene, cube_c, ppc)
    if cube_box is not None:   # the part inside the frame
        cube_box = (max(0.0, cube_box[0]), max(0.0, cube_box[1]), min(float(w), cube_box[2]),
                    min(float(h), cube_box[3]))
    return img, labels, cube_box


def _overlap(a, b, margin: float = 0.0) -> bool:
    return not (a[2] + margin <= b[0] or b[2] + margin <= a[0] or a[3] + margin <= b[1] or b[3] + margin <= a[1])



def _place_label(img: np.ndarray, labels: np.ndarray, scene: Scene, bbox, cube_box,
                 rng: np.random.Generator) -> list[tuple[int, int, int, int]]:
    """Draw the paper label at the first of 40 random places clear of the specimen and the
    cube; its text boxes (none when no place was free)."""
    w, h = scene.width, scene.height
    (lw, lh), _, _, _ = label_layout(scene)
    for _ in range(40):
        lx = int(rng.integers(0, max(1, w - lw)))
        ly = int(rng.integers(0, max(1, h - lh)))
        cand = (lx, ly, lx + lw, ly + lh)
        if not _overlap(cand, bbox, 0.03 * w) and (cube_box is None or not _overlap(cand, cube_box, 0.03 * w)) \
                and lx + lw <= w and ly + lh <= h:
            return draw_label(img, labels, scene, (lx, ly), rng)
    return []


@lru_cache(maxsize=2)
def _scratch(height: int, width: int) -> np.ndarray:
    # A full-frame float buffer reused image after image: a fresh 9 MB array per photo costs
    # more in page faults than the arithmetic. (A worker process renders one photo at a time.)
    return np.empty((height, width, 3), np.float32)


def camera(img: np.ndarray, scene: Scene, rng: np.random.Generator) -> np.ndarray:
    """Lens and sensor: blur, white balance and exposure, noise (BGR uint8 in and out).

    (Vignetting is part of the backdrop, see ``draw_background``.)
    """
    h, w = img.shape[:2]
    sigma = scene.blur_sigma * w / 1024
    if sigma > 0.25:
        img = cv2.GaussianBlur(img, (0, 0), sigma)
    gains = tuple(float(v) for v in (scene.wb * scene.light_tint)[::-1] * scene.exposure) + (0.0,)
    lin = _scratch(h, w)
    cv2.multiply(img, gains, dst=lin, dtype=cv2.CV_32F)
    bank = _noise_bank(h, w)
    oy, ox = int(rng.integers(0, 64)), int(rng.integers(0, 64))
    # One pass: light + noise * sigma, saturated to uint8.
    return cv2.addWeighted(lin, 1.0, bank[oy:oy + h, ox:ox + w], float(scene.noise_sigma), 0.0, dtype=cv2.CV_8U)
