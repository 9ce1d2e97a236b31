"""The props beside the specimen: the reference cube, drawn in true perspective with three
faces visible, and the paper label with its typed lines (whose boxes are the text truth)."""

from __future__ import annotations

import math

import cv2
import numpy as np

from minbench.data.synth.canvas import CUBE, LABEL, SHIFT
from minbench.data.synth.scene import CUBE_EDGE_CM, Scene


def cube_vertices(scene: Scene, centre_px: tuple[float, float], ppc: float) -> tuple[np.ndarray, list]:
    """Projected corners (8, 2) and visible faces [(corner indices, outward normal)] of the reference cube."""
    e = CUBE_EDGE_CM / 2
    corners = np.array([[x, y, z] for x in (-e, e) for y in (-e, e) for z in (-e, e)])
    cy, sy = math.cos(scene.cube_yaw), math.sin(scene.cube_yaw)
    cp, sp = math.cos(scene.cube_pitch), math.sin(scene.cube_pitch)
    yaw = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    pitch = np.array([[1, 0, 0], [0, cp, sp], [0, -sp, cp]])   # tips the top (-y) toward the camera (-z)
    rot = pitch @ yaw
    f = scene.width / 2 / math.tan(math.radians(scene.fov_deg) / 2)   # focal length in px
    d = f / ppc                        # camera distance in cm that gives the specimen plane ppc
    cx, cy_img = scene.width / 2, scene.height / 2
    centre = np.array([(centre_px[0] - cx) * d / f, (centre_px[1] - cy_img) * d / f, d])
    world = corners @ rot.T + centre
    uv = np.stack([cx + f * world[:, 0] / world[:, 2], cy_img + f * world[:, 1] / world[:, 2]], 1)
    faces_def = [((0, 1, 3, 2), (-1, 0, 0)), ((4, 5, 7, 6), (1, 0, 0)), ((0, 1, 5, 4), (0, -1, 0)),
                 ((2, 3, 7, 6), (0, 1, 0)), ((0, 2, 6, 4), (0, 0, -1)), ((1, 3, 7, 5), (0, 0, 1))]
    visible = []
    for idx, n in faces_def:
        n_cam = rot @ np.array(n, float)
        face_centre = world[list(idx)].mean(0)
        if n_cam @ face_centre < 0:   # facing the camera at the origin
            pts = uv[list(idx)]
            order = np.argsort(np.arctan2(pts[:, 1] - pts[:, 1].mean(), pts[:, 0] - pts[:, 0].mean()))
            visible.append((np.array(idx)[order], n_cam))
    return uv, visible


def cube_box_edges(scene: Scene, ppc: float) -> tuple[float, float]:
    """The cube's box (width, height) in edges as this camera shows it at the frame's centre,
    with 6% to spare for the wider look it has off the lens axis."""
    uv, _ = cube_vertices(scene, (scene.width / 2, scene.height / 2), ppc)
    box = (uv.max(0) - uv.min(0)) / (CUBE_EDGE_CM * ppc) * 1.06
    return float(box[0]), float(box[1])


def cube_outline(scene: Scene, centre_px, ppc: float) -> np.ndarray:
    """The cube's silhouette (convex hull of its projected corners): what casts its shadow."""
    uv, _ = cube_vertices(scene, centre_px, ppc)
    return cv2.convexHull(uv.astype(np.float32))[:, 0, :]


def draw_cube(img: np.ndarray, labels: np.ndarray, scene: Scene, centre_px, ppc: float) -> tuple[float, ...]:
    """Paint the cube's visible faces, lit by the scene's light; returns its box (x1, y1, x2, y2)."""
    uv, faces = cube_vertices(scene, centre_px, ppc)
    for idx, n in faces:
        lamb = max(0.0, float(n @ scene.light))
        up = max(0.0, -float(n[1]))      # the top face catches the most light in a museum set-up
        k = 0.35 + 0.45 * lamb + 0.3 * up
        col = tuple(int(v) for v in np.clip(scene.cube_rgb * k * 255, 0, 255)[::-1])
        pts = np.round(uv[idx] * (1 << SHIFT)).astype(np.int32)
        cv2.fillConvexPoly(img, pts, col, lineType=cv2.LINE_AA, shift=SHIFT)
        cv2.fillConvexPoly(labels, pts, CUBE, lineType=cv2.LINE_8, shift=SHIFT)
        edge = tuple(int(v * 0.6) for v in col)
        cv2.polylines(img, [pts], True, edge, 1, cv2.LINE_AA, shift=SHIFT)
    used = np.unique(np.concatenate([idx for idx, _ in faces]))
    p = uv[used]
    return (float(p[:, 0].min()), float(p[:, 1].min()), float(p[:, 0].max()), float(p[:, 1].max()))


# ---------------------------------------------------------------- label
FONTS = (cv2.FONT_HERSHEY_SIMPLEX, cv2.FONT_HERSHEY_COMPLEX, cv2.FONT_HERSHEY_SCRIPT_SIMPLEX)


def label_layout(scene: Scene) -> tuple[tuple[int, int], list, float, int]:
    """Size (w, h) of the paper label and the text lines' offsets inside it."""
    font = FONTS[scene.label_font]
    scale = scene.width / 1024 * 0.62
    thick = max(1, int(round(scene.width / 1024 * 1.5)))
    sizes = [cv2.getTextSize(t, font, scale, thick) for t in scene.label_lines]
    pad = int(8 * scene.width / 1024) + 2
    gap = int(6 * scene.width / 1024) + 1
    lw = max(s[0][0] for s in sizes) + 2 * pad
    lines, y = [], pad
    for (tw, th), base in sizes:
        lines.append((pad, y, tw, th, base))
        y += th + base + gap
    return (lw, y - gap + pad), lines, scale, thick


def draw_label(img: np.ndarray, labels: np.ndarray, scene: Scene, origin: tuple[int, int],
               rng: np.random.Generator) -> list[tuple[int, int, int, int]]:
    """Paint the paper label at ``origin`` (paper and ink drawn from ``rng``); returns its lines' boxes."""
    (lw, lh), lines, scale, thick = label_layout(scene)
    x0, y0 = origin
    paper = np.array([rng.uniform(225, 250), rng.uniform(220, 245), rng.uniform(200, 235)])
    cv2.rectangle(img, (x0, y0), (x0 + lw - 1, y0 + lh - 1), tuple(int(v) for v in paper[::-1]), -1)
    cv2.rectangle(labels, (x0, y0), (x0 + lw - 1, y0 + lh - 1), LABEL, -1)
    ink = (int(rng.uniform(20, 60)),) * 3 if rng.random() < 0.7 else (120, 40, 30)
    boxes = []
    for text, (px, py, tw, th, base) in zip(scene.label_lines, lines):
        org = (x0 + px, y0 + py + th)
        cv2.putText(img, text, org, FONTS[scene.label_font], scale, ink, thick, cv2.LINE_AA)
        boxes.append((x0 + px, y0 + py, x0 + px + tw, y0 + py + th + base))
    return boxes
