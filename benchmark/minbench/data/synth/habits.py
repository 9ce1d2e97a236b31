"""Parametric crystal habits: a habit word and a crystal system to a convex mesh.

The species table (``species.csv``) names each species' habits with a small vocabulary
("prismatic", "rhombohedral", "octahedral", ...). Here each (habit, system) pair becomes a
polyhedron, the intersection of the half-spaces of its crystal forms (Miller-index planes of
the system's symmetry), so species of one system share the forms real crystals of that system
show: many species are cubic, many are hexagonal prisms. Vertices come from the exact
half-space intersection (rounded, so the mesh is the same on every machine) and are handed to
:func:`meshes.load_mesh` as STL bytes like the database's own meshes.
"""

from __future__ import annotations

import math
import struct
from functools import lru_cache
from itertools import permutations, product

import numpy as np

from minbench.data.synth.meshes import Habit

CUBIC_HABITS = ("cubic", "octahedral", "dodecahedral", "trapezohedral", "pyritohedral", "tetrahedral",
                "cuboctahedral")
TRIGONAL_HABITS = ("rhombohedral", "scalenohedral")
OTHER_HABITS = ("prismatic", "short prismatic", "acicular", "tabular", "platy", "bladed", "dipyramidal",
                "pyramidal", "equant")
HABITS = CUBIC_HABITS + TRIGONAL_HABITS + OTHER_HABITS
SYSTEMS = ("cubic", "tetragonal", "hexagonal", "trigonal", "orthorhombic", "monoclinic", "triclinic")
# Prism length : width of the elongated habits, and thickness : width of the flat ones.
ELONGATION = {"prismatic": 2.6, "short prismatic": 1.2, "acicular": 7.0, "equant": 1.0, "dipyramidal": 0.0,
              "pyramidal": 0.0}
FLATNESS = {"tabular": 0.35, "platy": 0.12, "bladed": 0.18}


def _signed_perms(v) -> set[tuple]:
    """Every permutation and sign change of ``v``: the cubic form {hkl}."""
    return {tuple(s * x for s, x in zip(signs, p)) for p in permutations(v) for signs in product((1, -1), repeat=3)}


def _cubic_planes(habit: str) -> list[tuple[tuple, float]]:
    if habit == "cubic":
        return [(n, 1.0) for n in sorted(_signed_perms((1, 0, 0)))]
    if habit == "octahedral":
        return [(n, 1.0) for n in _signed_perms((1, 1, 1))]
    if habit == "dodecahedral":
        return [(n, 1.0) for n in _signed_perms((1, 1, 0))]
    if habit == "trapezohedral":
        return [(n, 1.0) for n in _signed_perms((2, 1, 1))]
    if habit == "pyritohedral":   # {210}: only the cyclic permutations (pyrite's point group)
        cyc = [(2, 1, 0), (0, 2, 1), (1, 0, 2)]
        faces = {tuple(s * x for s, x in zip(signs, c)) for c in cyc for signs in product((1, -1), repeat=3)}
        return [(n, 1.0) for n in sorted(faces)]
    if habit == "tetrahedral":    # half the octahedron's faces
        return [(n, 1.0) for n in _signed_perms((1, 1, 1)) if n[0] * n[1] * n[2] > 0]
    if habit == "cuboctahedral":
        return [(n, 1.0) for n in _signed_perms((1, 0, 0))] + [(n, 1.25) for n in _signed_perms((1, 1, 1))]
    if habit == "equant":         # cube modified by the octahedron and dodecahedron: a rounded block
        return ([(n, 1.0) for n in _signed_perms((1, 0, 0))] + [(n, 1.45) for n in _signed_perms((1, 1, 1))]
                + [(n, 1.3) for n in _signed_perms((1, 1, 0))])
    raise KeyError(habit)


def _ring(n: int, tilt_deg: float, z_sign: float, phase_deg: float = 0.0) -> list[tuple]:
    """Normals of ``n`` faces around the c axis, tilted ``tilt_deg`` from it (90 = prism faces)."""
    t = math.radians(tilt_deg)
    out = []
    for k in range(n):
        a = math.radians(phase_deg + 360.0 * k / n)
        out.append((math.sin(t) * math.cos(a), math.sin(t) * math.sin(a), z_sign * math.cos(t)))
    return out


def _axial_planes(habit: str, system: str) -> list[tuple[tuple, float]]:
    """Planes of a habit around a c axis: a prism of the system's section with terminations."""
    sides = {"hexagonal": 6, "trigonal": 6, "tetragonal": 4}.get(system, 4)
    if habit == "rhombohedral":
        return [(n, 1.0) for n in _ring(3, 45, 1) + _ring(3, 45, -1, 60)]
    if habit == "scalenohedral":  # pairs of steep faces about each rhombohedron face: a dog-tooth
        up = [n for k in range(3) for n in _ring(1, 70, 1, 120 * k - 18) + _ring(1, 70, 1, 120 * k + 18)]
        down = [n for k in range(3) for n in _ring(1, 70, -1, 120 * k + 42) + _ring(1, 70, -1, 120 * k + 78)]
        return [(n, 1.0) for n in up + down]
    prism = [(n, 1.0) for n in _ring(sides, 90, 1, 45 if sides == 4 else 0)]
    if habit in FLATNESS:
        return prism + [((0, 0, 1), FLATNESS[habit]), ((0, 0, -1), FLATNESS[habit])]
    if habit == "dipyramidal":
        return [(n, 1.0) for n in _ring(sides, 40, 1) + _ring(sides, 40, -1)]
    if habit == "pyramidal":      # one pyramid on a flat base (hemimorphic)
        return [(n, 1.0) for n in _ring(sides, 35, 1)] + [((0, 0, -1), 0.5)]
    length = ELONGATION[habit]
    # Terminations: a pyramid of the prism's section, cut by the pinacoid on the squat habits.
    tip = [(n, length * math.cos(math.radians(50)) + math.sin(math.radians(50)))
           for n in _ring(sides, 50, 1) + _ring(sides, 50, -1)]
    cap = [((0, 0, 1), length + 0.45), ((0, 0, -1), length + 0.45)]
    return prism + tip + (cap if length <= 1.2 else [])


# Linear maps that give the lower systems their section and their oblique terminations.
_SHEAR = {
    "orthorhombic": np.diag([1.0, 0.62, 1.0]),                                  # a rhombic section
    "monoclinic": np.array([[1.0, 0.0, 0.32], [0.0, 0.7, 0.0], [0.0, 0.0, 1.0]]),  # c tilted toward a
    "triclinic": np.array([[1.0, 0.18, 0.3], [0.0, 0.72, 0.2], [0.0, 0.0, 1.0]]),
}


def _halfspace_vertices(planes: list[tuple[tuple, float]]) -> np.ndarray:
    from scipy.spatial import HalfspaceIntersection

    normals = np.array([n for n, _ in planes], dtype=np.float64)
    normals /= np.linalg.norm(normals, axis=1, keepdims=True)
    offsets = np.array([d for _, d in planes], dtype=np.float64)
    hs = HalfspaceIntersection(np.c_[normals, -offsets], np.zeros(3))
    # Rounded and deduplicated: the mesh must not depend on a CPU's last bits.
    return np.unique(np.round(hs.intersections, 6), axis=0)


def _stl(vertices: np.ndarray) -> bytes:
    """Binary STL of the convex hull of ``vertices``."""
    from scipy.spatial import ConvexHull

    hull = ConvexHull(vertices)
    out = [b"minbench parametric habit".ljust(80, b" "), struct.pack("<I", len(hull.simplices))]
    for tri in hull.simplices:
        v = vertices[tri]
        out.append(struct.pack("<3f", 0.0, 0.0, 0.0) + v.astype("<f4").tobytes() + b"\0\0")
    return b"".join(out)


def valid_habits(system: str) -> tuple[str, ...]:
    """The habit words a species of ``system`` may have."""
    if system == "cubic":
        return CUBIC_HABITS + ("equant",)
    return OTHER_HABITS + (TRIGONAL_HABITS if system == "trigonal" else ())


@lru_cache(maxsize=None)
def parametric_habit(habit: str, system: str) -> Habit:
    """The :class:`Habit` (a convex mesh as STL) of a habit word in a crystal system."""
    if system not in SYSTEMS:
        raise ValueError(f"crystal system {system!r} is not one of {', '.join(SYSTEMS)}")
    if habit not in valid_habits(system):
        raise ValueError(f"habit {habit!r} is not one of a {system} crystal's: {', '.join(valid_habits(system))}")
    if system == "cubic":
        verts = _halfspace_vertices(_cubic_planes(habit))
    else:
        verts = _halfspace_vertices(_axial_planes(habit, system))
        if habit == "bladed":     # a blade: a flat plate drawn out along one edge
            verts = verts * np.array([2.8, 1.0, 1.0])
        if system in _SHEAR:
            verts = np.round(verts @ _SHEAR[system].T, 6)
    slug = f"{habit.replace(' ', '-')}-{system}"
    return Habit(slug=slug, name=habit, stl=_stl(verts), massive=False, words=habit)
