"""Where the specimen and the reference cube go in the photo, and at what scale.

A museum photographer frames each specimen to fill a similar share of the photo whatever its
size, with the cube beside it at true scale (:func:`frame_scales`); :func:`frame_layout`
places both in the frame, the cube on its side (or touching, half hidden, cut by the frame).
"""

from __future__ import annotations

import math

import numpy as np

from minbench.data.synth.props import cube_box_edges
from minbench.data.synth.scene import CUBE_EDGE_CM, Scene

# The cube's strip: room for its perspective box (``cube_box_edges``) plus, when it stands apart,
# a gap to the specimen of a margin and 0.4 edge, so the two never touch or blur together.
MARGIN = 0.04   # of the photo's width, around everything


def cube_gap(scene: Scene) -> float:
    """The gap between the cube's strip and the specimen, in cube edges (0 when they touch)."""
    return 0.4 if scene.cube_mode in ("beside", "cut") else 0.0


CUBE_SIDES = ("left", "right", "bottom")


def cube_room(scene: Scene, side: str, ex: float, ey: float, e_units: float, box: tuple[float, float]) -> float:
    """The largest pixels per specimen unit at which the specimen (``ex`` x ``ey`` units) and the
    cube's strip on ``side`` (an edge of ``e_units`` specimen units, its box ``box`` edges) both fit."""
    w, h = scene.width, scene.height
    m = MARGIN * w
    bw, bh = box
    gap = cube_gap(scene)
    if side in ("left", "right"):
        return min((w - 3 * m) / (ex + (bw + gap) * e_units), (h - 2 * m) / max(ey, bh * e_units))
    return min((h - 3 * m) / (ey + (bh + gap) * e_units), (w - 2 * m) / max(ex, bw * e_units))


def frame_scales(scene: Scene, ex: float, ey: float, r_cm: float) -> tuple[float, float, str, tuple[float, float]]:
    """Pixels per specimen unit (``k``), the cube plane's px/cm (what the cube measures), the
    side the cube stands on and its box in edges.

    A museum photographer frames each specimen to fill a similar share of the photo whatever its
    size (``scene.fill`` of the frame inside the margins), and the cube stands beside it at true
    scale: on the scene's side, or where it has no room there, on the side with the most room.
    Only where it fits on no side (the smallest specimens, about as large as the cube) is the
    specimen drawn smaller, as little as needed. The cube's plane is nearer (or farther) than
    the specimen's: its scale differs by the ratio of the two distances.
    """
    w, h = scene.width, scene.height
    f = w / 2 / math.tan(math.radians(scene.fov_deg) / 2)
    m = MARGIN * w
    k_frame = scene.fill * min((w - 2 * m) / ex, (h - 2 * m) / ey)
    sides = (scene.cube_side,) + tuple(s for s in CUBE_SIDES if s != scene.cube_side)
    # the cube's box in edges hardly depends on its distance (6% to spare covers that)
    ratio, box = 1.0, cube_box_edges(scene, k_frame / r_cm)
    for _ in range(8):   # the ratio depends on the distance, which depends on the scale: settle it
        k, side, used = k_frame, scene.cube_side, ratio
        if scene.cube_mode != "absent":
            e_units = CUBE_EDGE_CM / r_cm * ratio         # cube edge in units of the specimen's plane
            room = [cube_room(scene, s, ex, ey, e_units, box) for s in sides]
            best = room.index(max(room)) if room[0] < k_frame else 0   # ties: the first, as listed
            k, side = min(k_frame, room[best]), sides[best]
        d_spec = f * r_cm / k
        ratio = d_spec / max(0.5 * d_spec, d_spec - scene.depth_cm)
    # the cube's scale with the ratio its room was measured with, so it fits as planned (the
    # ratio has settled by now: the specimen's distance is off by a negligible share)
    return k, k / r_cm * used, side, box


def frame_layout(scene: Scene, side: str, box: tuple[float, float], lo: np.ndarray, k: float, ppc: float,
            spec_w: float, spec_h: float, rng: np.random.Generator) -> tuple[np.ndarray, list[float]]:
    """Where the specimen's unit origin and the cube's centre (on ``side``, its box ``box`` edges)
    go, in pixels."""
    w, h = scene.width, scene.height
    m = MARGIN * w
    bw, bh = box
    gap = cube_gap(scene)
    edge = CUBE_EDGE_CM * ppc
    cube_w, cube_h = bw * edge, bh * edge
    # (an absent cube was given no room: its never-drawn centre is still drawn from rng, so that
    # every photo draws the same numbers, and may lie anywhere)
    if side == "right":
        region = (m, m, w - 2 * m - cube_w - gap * edge, h - m)
        cube_c = [w - m - cube_w / 2, rng.uniform(m + cube_h / 2, max(m + cube_h / 2, h - m - cube_h / 2))]
    elif side == "left":
        region = (2 * m + cube_w + gap * edge, m, w - m, h - m)
        cube_c = [m + cube_w / 2, rng.uniform(m + cube_h / 2, max(m + cube_h / 2, h - m - cube_h / 2))]
    else:
        region = (m, m, w - m, h - 2 * m - cube_h - gap * edge)
        cube_c = [rng.uniform(m + cube_w / 2, max(m + cube_w / 2, w - m - cube_w / 2)), h - m - cube_h / 2]
    if scene.cube_mode == "absent":   # nothing beside it: the whole frame is the specimen's
        region = (m, m, w - m, h - m)
    sx = rng.uniform(region[0], max(region[0], region[2] - spec_w))
    sy = rng.uniform(region[1], max(region[1], region[3] - spec_h))
    if scene.cube_mode in ("touching", "occluded"):   # the specimen pushed against the cube's side
        sx = {"right": max(region[0], region[2] - spec_w), "left": region[0]}.get(side, sx)
        sy = max(region[1], region[3] - spec_h) if side == "bottom" else sy
    origin = np.array([sx, sy]) - lo * k
    axis = 0 if side in ("left", "right") else 1
    sign = {"right": 1, "left": -1, "bottom": 1}[side]
    if scene.cube_mode == "occluded":    # slid a third of its width behind the specimen
        cube_c[axis] -= sign * 0.35 * (cube_w if axis == 0 else cube_h)
    elif scene.cube_mode == "cut":       # half out of the frame
        cube_c[axis] += sign * (m + 0.5 * (cube_w if axis == 0 else cube_h))
    return origin, cube_c
