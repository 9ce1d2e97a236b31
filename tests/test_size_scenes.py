"""Museum-like test scenes drawn with cv2 (specimen, reference cube in 3D, paper label) and
their own sanity checks. The other size tests import ``draw_scene`` from here, so the
estimator is tested on photos whose truth is known exactly, independent of the generator."""

from __future__ import annotations

import cv2
import numpy as np

CUBE_CM = 1.27


def rotation(yaw: float, pitch: float, roll: float = 0.0) -> np.ndarray:
    cy, sy = np.cos(yaw), np.sin(yaw)
    cp, sp = np.cos(pitch), np.sin(pitch)
    cr, sr = np.cos(roll), np.sin(roll)
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rx = np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])
    rz = np.array([[cr, -sr, 0], [sr, cr, 0], [0, 0, 1]])
    return rz @ rx @ ry


def draw_cube(img: np.ndarray, centre, edge_px: float, rot: np.ndarray, colour=(200, 200, 195),
              light=(-0.4, -0.7, -0.6), ss: int = 4, fov_deg: float = 30.0) -> np.ndarray:
    """Draw a shaded cube into ``img``; return its silhouette corners (Nx2).

    A pin-hole camera (principal point at the photo's centre, horizontal field of view
    ``fov_deg``) sees the cube so that the plane of its centre has ``edge_px`` pixels per
    edge. Rendered ``ss`` times supersampled and area-averaged, so its edges sit where
    the geometry says (cv2's own anti-aliased fill grows a polygon by about a pixel).
    """
    h_img, w_img = img.shape[:2]
    f = w_img / 2 / np.tan(np.radians(fov_deg) / 2)
    z = f / edge_px  # distance of the cube's centre, in edges
    corners = np.array([[x, y, q] for x in (-0.5, 0.5) for y in (-0.5, 0.5) for q in (-0.5, 0.5)])
    world = corners @ rot.T + [(centre[0] - w_img / 2) * z / f, (centre[1] - h_img / 2) * z / f, z]
    p = np.column_stack([f * world[:, 0] / world[:, 2] + w_img / 2 - centre[0],
                         f * world[:, 1] / world[:, 2] + h_img / 2 - centre[1], world[:, 2] - z])
    p3 = world
    faces = [(0, 1, 3, 2), (4, 5, 7, 6), (0, 1, 5, 4), (2, 3, 7, 6), (0, 2, 6, 4), (1, 3, 7, 5)]
    light = np.asarray(light, float) / np.linalg.norm(light)
    c = np.asarray(centre, float)
    x0 = int(np.floor(c[0] - 1.2 * edge_px)) - 2
    y0 = int(np.floor(c[1] - 1.2 * edge_px)) - 2
    size = int(np.ceil(2.4 * edge_px)) + 5
    patch = np.zeros((size * ss, size * ss, 3), np.float32)
    cover = np.zeros((size * ss, size * ss), np.float32)
    drawn = []
    for face in faces:
        q = p[list(face)]
        w3 = p3[list(face)]
        n = np.cross(w3[1] - w3[0], w3[2] - w3[0])
        n /= np.linalg.norm(n)
        if np.dot(n, w3.mean(0) - p3.mean(0)) < 0:
            n = -n  # outward
        if np.dot(n, w3.mean(0)) >= 0:  # faces the camera at the origin only if n points back to it
            continue
        shade = 0.35 + 0.65 * max(0.0, float(np.dot(n, light)))
        col = tuple(float(np.clip(v * shade, 0, 255)) for v in colour)
        xy = q[:, :2] + c  # image coordinates, pixel i's centre at i
        fine = (xy - [x0, y0] + 0.5) * ss - 0.5
        pts = np.round(fine * 16).astype(np.int32)
        cv2.fillConvexPoly(patch, pts, col, cv2.LINE_8, shift=4)
        cv2.fillConvexPoly(cover, pts, 1.0, cv2.LINE_8, shift=4)
        # a real cube's edges show (bevels, wear): a darker rim, inside the face only
        cv2.polylines(patch, [pts], True, tuple(0.6 * v for v in col), ss, cv2.LINE_8, shift=4)
        drawn.append(xy)
    patch *= cover[:, :, None]
    patch = cv2.resize(patch, (size, size), interpolation=cv2.INTER_AREA)
    alpha = cv2.resize(cover, (size, size), interpolation=cv2.INTER_AREA)[:, :, None]
    h, w = img.shape[:2]
    ys, xs = slice(max(y0, 0), min(y0 + size, h)), slice(max(x0, 0), min(x0 + size, w))
    py, px = slice(ys.start - y0, ys.stop - y0), slice(xs.start - x0, xs.stop - x0)
    region = img[ys, xs].astype(np.float32)
    img[ys, xs] = np.clip(region * (1 - alpha[py, px]) + patch[py, px], 0, 255).round().astype(np.uint8)
    return np.vstack(drawn)


def draw_specimen(img: np.ndarray, rng: np.random.Generator, centre, radius: float) -> np.ndarray:
    """A rock blob with a few crystals; returns its mask (bool)."""
    h, w = img.shape[:2]
    mask = np.zeros((h, w), np.uint8)
    n = 24
    ang = np.sort(rng.uniform(0, 2 * np.pi, n))
    r = radius * (0.75 + 0.25 * rng.random(n)) * np.array([1.0 + 0.3 * np.cos(a) for a in ang])
    pts = np.stack([centre[0] + r * np.cos(ang), centre[1] + 0.75 * r * np.sin(ang)], 1).astype(np.int32)
    base = np.array(rng.integers(60, 150, 3), float)
    cv2.fillPoly(mask, [pts], 1)
    for _ in range(rng.integers(2, 5)):  # crystals: prisms poking out of the matrix
        a = rng.uniform(0, 2 * np.pi)
        L = radius * rng.uniform(0.5, 0.9)
        wdt = radius * 0.18
        d = np.array([np.cos(a), np.sin(a)])
        nrm = np.array([-d[1], d[0]])
        c0 = np.asarray(centre, float)
        tip = c0 + d * L
        poly = np.array([c0 + nrm * wdt, tip + nrm * wdt, tip + d * wdt, tip - nrm * wdt, c0 - nrm * wdt]).astype(np.int32)
        cv2.fillConvexPoly(mask, poly, 2)
    tex = rng.normal(0, 18, (h, w, 1))
    rock = np.clip(base + tex, 0, 255)
    crystal = np.clip(np.array(rng.integers(90, 230, 3), float) + tex * 0.5, 0, 255)
    img[mask == 1] = rock[mask == 1].astype(np.uint8)
    img[mask == 2] = crystal[mask == 2].astype(np.uint8)
    return mask > 0


def draw_label(img: np.ndarray, x: int, y: int, w: int, h: int) -> list[int]:
    cv2.rectangle(img, (x, y), (x + w, y + h), (235, 232, 220), -1)
    for i in range(3):
        cv2.putText(img, "No 2731" if i == 0 else "quartz, Ural", (x + 4, y + 12 + i * max(h // 3, 8)),
                    cv2.FONT_HERSHEY_SIMPLEX, max(h / 90, 0.25), (30, 30, 30), 1, cv2.LINE_AA)
    return [x, y, x + w, y + h]


def background(h: int, w: int, rng: np.random.Generator, kind: str | None = None) -> np.ndarray:
    kind = kind or rng.choice(["grey", "black", "white"])
    top, bottom = {"grey": (150, 110), "black": (40, 15), "white": (240, 205)}[kind]
    ramp = np.linspace(top, bottom, h)[:, None, None]
    tint = np.array([1.0, 0.98, 0.95])
    img = np.clip(ramp * tint + rng.normal(0, 2.0, (h, w, 3)), 0, 255)
    return np.repeat(img, 1, axis=1).astype(np.uint8) if img.shape[1] == w else np.broadcast_to(img, (h, w, 3)).astype(np.uint8)


def draw_scene(seed: int = 0, *, width: int = 640, height: int = 480, n_cubes: int = 1, px_per_cm: float | None = None,
               bg: str | None = None, cube_at=None, jpeg: int | None = 90, label: bool = True, cube_rot=None,
               fov_deg: float = 30.0):
    """A photo (RGB uint8) and its truth: size_cm, px_per_cm, bbox, cube_bboxes."""
    rng = np.random.default_rng(seed)
    img = np.ascontiguousarray(background(height, width, rng, bg))
    px_per_cm = px_per_cm or float(rng.uniform(18, 32)) * width / 640
    edge = CUBE_CM * px_per_cm
    radius = float(rng.uniform(0.17, 0.24)) * width
    centre = (0.42 * width + rng.uniform(-0.03, 0.03) * width, 0.45 * height)
    mask = draw_specimen(img, rng, centre, radius)
    ys, xs = np.nonzero(mask)
    bbox = [int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1]
    cube_boxes = []
    for k in range(n_cubes):
        if cube_at is not None:
            cpos = cube_at
        else:
            cpos = (0.82 * width, (0.3 + 0.4 * k) * height)
        rot = rotation(rng.uniform(0.35, 1.2), rng.uniform(-0.75, -0.35), rng.uniform(-0.2, 0.2))
        rot = rot if cube_rot is None else cube_rot
        sil = draw_cube(img, cpos, edge, rot, colour=(205, 200, 190) if (bg or "") != "white" else (60, 60, 70),
                        fov_deg=fov_deg)
        cube_boxes.append([float(sil[:, 0].min()), float(sil[:, 1].min()), float(sil[:, 0].max()), float(sil[:, 1].max())])
    label_box = draw_label(img, int(0.05 * width), int(0.82 * height), int(0.22 * width), int(0.12 * height)) if label else None
    if jpeg:
        ok, buf = cv2.imencode(".jpg", img[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, jpeg])
        img = cv2.imdecode(buf, cv2.IMREAD_COLOR)[:, :, ::-1].copy()
    size_cm = max(bbox[2] - bbox[0], bbox[3] - bbox[1]) / px_per_cm
    return img, dict(size_cm=size_cm, px_per_cm=px_per_cm, bbox=bbox, cube_bboxes=cube_boxes, label_box=label_box)


def test_scene_truth_is_consistent():
    img, t = draw_scene(3)
    assert img.shape == (480, 640, 3) and img.dtype == np.uint8
    assert t["size_cm"] * t["px_per_cm"] == max(t["bbox"][2] - t["bbox"][0], t["bbox"][3] - t["bbox"][1])
    (cb,) = t["cube_bboxes"]
    # a cube's silhouette is never narrower than its edge nor wider than its space diagonal
    side = max(cb[2] - cb[0], cb[3] - cb[1])
    assert CUBE_CM * t["px_per_cm"] * 0.99 <= side <= CUBE_CM * t["px_per_cm"] * np.sqrt(3) * 1.01


def test_scene_objects_do_not_overlap():
    for seed in range(5):
        _, t = draw_scene(seed)
        b, c = t["bbox"], t["cube_bboxes"][0]
        assert c[0] > b[2] or c[2] < b[0] or c[1] > b[3] or c[3] < b[1]
