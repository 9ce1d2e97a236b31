"""How the bodies of a specimen sit together, and how big the specimen is in 3-D.

Crystals of a group touch rather than pass through each other (:func:`settle` pushes them
apart, their roots kept on the matrix), and the specimen's size is what calipers measure over
its 3-D points (:func:`longest_dimension` of :func:`specimen_points`): the matrix's thickness
and the crystals standing on it included.
"""

from __future__ import annotations

import math

import numpy as np

from minbench.data.synth.meshes import Placed, hemisphere_dirs, separate
from minbench.data.synth.scene import Scene

# Directions for the caliper measurement: the longest extent over 256 directions is within
# 0.1% of the true diameter of the point set.
_DIRS = hemisphere_dirs(256)


def longest_dimension(points: np.ndarray) -> float:
    """The longest extent of a 3-D point set over all directions (what calipers measure)."""
    proj = points @ _DIRS.T
    return float((proj.max(0) - proj.min(0)).max())


#: how deep a body is rooted in what it stands on, as a share of its depth
ROOT_DEPTH = 0.25


def rooted(u: Placed, front: float) -> np.ndarray:
    """A body's 3-D points standing on the plane ``front``: rooted ``ROOT_DEPTH`` of its depth
    deep (or lifted onto the bodies below it, ``u.lift``)."""
    return np.c_[u.xy, u.z - u.z.max() + front + ROOT_DEPTH * (u.z.max() - u.z.min()) + u.lift]


def specimen_points(scene: Scene, blob: np.ndarray, unit: list[Placed]) -> np.ndarray:
    """The specimen's 3-D points in matrix-radius units: the matrix outline at its front and back
    faces, and the crystals' vertices standing on its front face."""
    half = scene.matrix_depth / 2
    parts = []
    if len(blob):
        parts += [np.c_[blob, np.full(len(blob), -half)], np.c_[blob, np.full(len(blob), half)]]
    front = -half if len(blob) else 0.0
    parts += [rooted(u, front) for u in unit]
    return np.concatenate(parts)


def fused(c) -> bool:
    """Bodies of an aggregate that grow into each other: lumps and grains of massive, granular and
    botryoidal forms, and the fibres of a radiating spray (they share one root)."""
    return c.mesh.massive or c.mesh.habit == "fibrous"


def on_matrix(blob: np.ndarray):
    """Whether points lie within ``slack`` of the matrix (the blob is star-shaped about its
    centre, so its radius by angle says where it ends)."""
    ang = np.arctan2(blob[:, 1], blob[:, 0])
    rad = np.hypot(blob[:, 0], blob[:, 1])
    order = np.argsort(ang, kind="stable")
    ang, rad = ang[order], rad[order]

    def inside(pts: np.ndarray, slack: float = 0.0) -> np.ndarray:
        edge = np.interp(np.arctan2(pts[:, 1], pts[:, 0]), ang, rad, period=2 * math.pi)
        return np.hypot(pts[:, 0], pts[:, 1]) <= edge + slack
    return inside


def settle(scene: Scene, blob: np.ndarray, unit: list[Placed]) -> None:
    """Move the crystals (matrix-radius units) so no two of them pass through each other: each
    touches its neighbours instead, its root kept on the matrix (pushed aside in the picture's
    plane, or where that would take it off the matrix, lifted onto the crystals below it).

    The specimen's own larger crystals stay where they grew, smaller ones and then the satellites
    give way; bodies of an aggregate that grow into each other (``fused``) stay as they are.
    """
    crystals = scene.crystals
    n = len(crystals)
    if n < 2:
        return
    grown = np.array([fused(c) for c in crystals])
    sat = np.array([c.satellite for c in crystals])
    apart = ~(grown[:, None] & grown[None, :] & (sat[:, None] == sat[None, :]))
    order = np.lexsort((-np.array([c.size for c in crystals]), sat))   # own before satellites, large first
    bodies = [rooted(u, 0.0) for u in unit]
    anchors = np.array([c.offset for c in crystals], float)
    # rooted: its centre no farther off the matrix than a third of its size (its foot still on it)
    slack = np.array([c.size for c in crystals]) / 3
    shift = separate(bodies, order, apart, anchors, slack, on_matrix(blob) if len(blob) else None)
    for u, t in zip(unit, shift):
        u.xy = u.xy + t[:2]
        u.lift = float(t[2])
