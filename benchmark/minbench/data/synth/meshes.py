"""Crystal-habit meshes (binary STL from gemmology-mineral-database) and how to draw them.

A mesh is centred on its bounding box and scaled so its longest side is 1. Drawing is
flat-shaded, face by face (coplanar triangles share a face and its colour), back faces
culled, faces painted far-to-near, so convex habits are exact and twins nearly so.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np


@dataclass(frozen=True)
class Habit:
    """One crystal habit of a species: a mesh and the words for it."""

    slug: str
    name: str
    stl: bytes = field(repr=False)
    massive: bool
    words: str = ""                      # the habit in words, when known (parametric habits)

    @property
    def digest(self) -> str:
        return hashlib.sha1(self.stl).hexdigest()[:16]


_STL_DTYPE = np.dtype([("n", "<f4", 3), ("v", "<f4", (3, 3)), ("a", "<u2")])
# Words of the database's expression names that already say the habit.
HABIT_WORDS = {
    "octahedron": "octahedral", "cube": "cubic", "dodecahedron": "dodecahedral", "trapezohedron": "trapezohedral",
    "pyritohedron": "pyritohedral", "scalenohedron": "scalenohedral", "rhomb": "rhombohedral",
    "cuboctahedron": "cuboctahedral", "prism": "prismatic", "prismatic": "prismatic", "tabular": "tabular",
    "bipyramid": "bipyramidal", "barrel": "barrel-shaped", "massive": "massive", "botryoidal": "botryoidal",
    "kidney": "botryoidal", "druse": "drusy", "cluster": "clustered", "twin": "twinned", "macle": "twinned (macle)",
    "swallowtail": "twinned (swallowtail)", "cross": "cruciform twinned", "trilling": "twinned (trilling)",
    "scepter": "sceptred", "geode": "drusy", "nailhead": "nailhead", "specularite": "platy", "stacked": "stacked",
    "short": "short prismatic", "carlsbad": "twinned (Carlsbad)", "baveno": "twinned (Baveno)",
}


@dataclass(frozen=True)
class Mesh:
    vertices: np.ndarray     # (V, 3) float64, centred, longest side 1
    triangles: np.ndarray    # (T, 3) int32 vertex indices
    face_of: np.ndarray      # (T,) int32: which planar face a triangle belongs to
    normals: np.ndarray      # (F, 3) outward unit normals per face
    habit: str               # words for the habit, e.g. "prismatic"
    massive: bool
    face_edges: tuple = ()   # per face: (k, 2) vertex pairs of its outline (crystal edges)


def parse_stl(data: bytes) -> np.ndarray:
    """Binary STL to an array of triangles (T, 3, 3)."""
    n = int.from_bytes(data[80:84], "little")
    tri = np.frombuffer(data[84:84 + 50 * n], _STL_DTYPE)
    return tri["v"].astype(np.float64)


def _habit_words(habit: Habit, extents: np.ndarray, outlines: tuple) -> str:
    if habit.words:
        return habit.words
    name = f"{habit.slug} {habit.name}".lower()
    for key, words in sorted(HABIT_WORDS.items(), key=lambda kv: -len(kv[0])):   # "cuboctahedron" before "octahedron"
        if key in name.replace("-", " ").split() or key in name:
            if key == "prism" and ("short" in name):
                return "short prismatic"
            return words
    if habit.massive:
        return "massive"
    e = np.sort(extents)[::-1]
    if e[1] < 0.5:
        return "elongated prismatic"
    if e[2] < 0.45:
        return "tabular"
    sides = [len(o) for o in outlines]      # edges per face: 3 triangle, 4 quadrilateral, ...
    n = len(sides)
    if n == 8 and all(k == 3 for k in sides):
        return "octahedral"
    if n == 6 and all(k == 4 for k in sides):
        return "blocky"
    if n == 12 and all(k == 4 for k in sides):
        return "dodecahedral"
    if n == 12 and all(k == 5 for k in sides):
        return "pyritohedral"
    if n == 24:
        return "trapezohedral"
    if any(k == 6 for k in sides):
        return "short prismatic"
    return "equant"


@lru_cache(maxsize=None)
def load_mesh(habit: Habit) -> Mesh:
    """The habit's mesh, normalised, with planar faces found."""
    tris = parse_stl(habit.stl)
    verts, inverse = np.unique(np.round(tris.reshape(-1, 3), 5), axis=0, return_inverse=True)
    triangles = inverse.reshape(-1, 3).astype(np.int32)
    lo, hi = verts.min(0), verts.max(0)
    verts = (verts - (lo + hi) / 2) / max(float((hi - lo).max()), 1e-9)
    a, b, c = verts[triangles[:, 0]], verts[triangles[:, 1]], verts[triangles[:, 2]]
    n = np.cross(b - a, c - a)
    area = np.linalg.norm(n, axis=1)
    keep = area > 1e-9
    triangles, n, a = triangles[keep], n[keep] / area[keep, None], a[keep]
    # Orient normals outward (away from the centroid); some exporters wind inconsistently.
    centroid = verts[triangles].mean(axis=(0, 1))
    flip = ((verts[triangles].mean(1) - centroid) * n).sum(1) < 0
    n[flip] *= -1
    d = (n * a).sum(1)
    key = np.round(np.concatenate([n, d[:, None]], 1), 3)
    _, face_of = np.unique(key, axis=0, return_inverse=True)
    face_of = face_of.reshape(-1).astype(np.int32)
    normals = np.zeros((face_of.max() + 1, 3))
    np.add.at(normals, face_of, n)
    normals /= np.linalg.norm(normals, axis=1, keepdims=True) + 1e-12
    ext = verts.max(0) - verts.min(0)
    outlines = _face_outlines(triangles, face_of, len(normals))
    return Mesh(vertices=verts, triangles=triangles, face_of=face_of, normals=normals,
                habit=_habit_words(habit, ext, outlines), massive=habit.massive,
                face_edges=() if habit.massive else outlines)


def _face_outlines(triangles: np.ndarray, face_of: np.ndarray, n_faces: int) -> tuple:
    """Edges that bound each planar face (an edge shared by two triangles of one face is inside it)."""
    out = []
    for f in range(n_faces):
        tris = triangles[face_of == f]
        edges = np.sort(np.concatenate([tris[:, [0, 1]], tris[:, [1, 2]], tris[:, [2, 0]]]), axis=1)
        uniq, counts = np.unique(edges, axis=0, return_counts=True)
        out.append(uniq[counts == 1])
    return tuple(out)


def lumpy(mesh: Mesh, rng: np.random.Generator, amount: float = 0.18) -> Mesh:
    """A massive habit (a sphere-like mesh) pushed in and out radially: a nodular lump."""
    v = mesh.vertices
    r = np.linalg.norm(v, axis=1, keepdims=True) + 1e-9
    dirs = rng.normal(size=(4, 3))
    bumps = sum(np.sin(3.0 * (v / r) @ dvec + rng.uniform(0, 6.3)) for dvec in dirs) / 4
    v2 = v * (1 + amount * bumps[:, None])
    tri = mesh.triangles
    a, b, c = v2[tri[:, 0]], v2[tri[:, 1]], v2[tri[:, 2]]
    n = np.cross(b - a, c - a)
    n /= np.linalg.norm(n, axis=1, keepdims=True) + 1e-12
    flip = ((v2[tri].mean(1)) * n).sum(1) < 0
    n[flip] *= -1
    return Mesh(vertices=v2, triangles=tri, face_of=np.arange(len(tri), dtype=np.int32), normals=n,
                habit=mesh.habit, massive=True)


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    """A uniformly random 3-D rotation matrix."""
    q = rng.normal(size=4)
    q /= np.linalg.norm(q)
    w, x, y, z = q
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                     [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                     [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])


@dataclass
class Placed:
    """A mesh posed in the image: 2-D vertices in pixels, depth, and face normals in camera space."""

    mesh: Mesh
    xy: np.ndarray       # (V, 2) pixels
    z: np.ndarray        # (V,) depth, larger = farther
    normals: np.ndarray  # (F, 3) camera-space normals (z toward the viewer is negative)
    lift: float = 0.0    # how far it stands off the surface it is rooted on, toward the camera (<= 0)

    def bounds(self) -> tuple[float, float, float, float]:
        return (float(self.xy[:, 0].min()), float(self.xy[:, 1].min()),
                float(self.xy[:, 0].max()), float(self.xy[:, 1].max()))


def place(mesh: Mesh, rotation: np.ndarray, size_px: float, centre: tuple[float, float],
          stretch: np.ndarray | None = None) -> Placed:
    """Pose a mesh: optional per-axis stretch (habit variation), rotation, scale and shift."""
    v = mesh.vertices * (stretch if stretch is not None else 1.0)
    normals = mesh.normals / (stretch if stretch is not None else 1.0)
    normals /= np.linalg.norm(normals, axis=1, keepdims=True)
    v = v @ rotation.T
    normals = normals @ rotation.T
    xy = v[:, :2] * size_px + np.asarray(centre)
    return Placed(mesh=mesh, xy=xy, z=v[:, 2] * size_px, normals=normals)


def visible_faces(p: Placed) -> list[tuple[int, np.ndarray, float]]:
    """(face index, list of triangle polygons (k, 3, 2) int32, mean depth) of front faces, far first."""
    front = p.normals[:, 2] < -1e-6          # the camera looks along +z
    tri_face = p.mesh.face_of
    tri_keep = front[tri_face]
    if not tri_keep.any():
        return []
    tris = p.mesh.triangles[tri_keep]
    faces = tri_face[tri_keep]
    pts = np.round(p.xy[tris] * 16).astype(np.int32)   # 4 fractional bits for cv2's shift=4
    depth = p.z[tris].mean(1)
    order = np.argsort(faces, kind="stable")
    faces, pts, depth = faces[order], pts[order], depth[order]
    # runs of one face: sliced and averaged in one go (a crystal has hundreds of faces to draw a
    # photo, and a call per face costs more than the arithmetic)
    starts = np.flatnonzero(np.r_[True, faces[1:] != faces[:-1]])
    ends = np.r_[starts[1:], len(faces)]
    mean = np.add.reduceat(depth, starts) / (ends - starts)
    out = [(f, pts[a:b], d)
           for f, a, b, d in zip(faces[starts].tolist(), starts.tolist(), ends.tolist(), mean.tolist())]
    out.sort(key=lambda t: -t[2])
    return out


def _mesh_from(vertices: np.ndarray, triangles: np.ndarray, habit: str, massive: bool) -> Mesh:
    """A Mesh of procedural geometry: one face per triangle (curved surfaces), outward normals."""
    v = vertices - (vertices.max(0) + vertices.min(0)) / 2
    v = v / max(float((v.max(0) - v.min(0)).max()), 1e-9)
    a, b, c = v[triangles[:, 0]], v[triangles[:, 1]], v[triangles[:, 2]]
    n = np.cross(b - a, c - a)
    n /= np.linalg.norm(n, axis=1, keepdims=True) + 1e-12
    flip = ((v[triangles].mean(1)) * n).sum(1) < 0
    n[flip] *= -1
    return Mesh(vertices=v, triangles=triangles.astype(np.int32), face_of=np.arange(len(triangles), dtype=np.int32),
                normals=n, habit=habit, massive=massive)


@lru_cache(maxsize=4)
def sphere_mesh(subdivisions: int = 2) -> Mesh:
    """An icosphere (80 faces at 1 subdivision, 320 at 2): the body of massive, granular and
    botryoidal forms, pushed into lumps by :func:`lumpy`."""
    t = (1 + 5 ** 0.5) / 2
    verts = [(-1, t, 0), (1, t, 0), (-1, -t, 0), (1, -t, 0), (0, -1, t), (0, 1, t), (0, -1, -t), (0, 1, -t),
             (t, 0, -1), (t, 0, 1), (-t, 0, -1), (-t, 0, 1)]
    faces = [(0, 11, 5), (0, 5, 1), (0, 1, 7), (0, 7, 10), (0, 10, 11), (1, 5, 9), (5, 11, 4), (11, 10, 2),
             (10, 7, 6), (7, 1, 8), (3, 9, 4), (3, 4, 2), (3, 2, 6), (3, 6, 8), (3, 8, 9), (4, 9, 5), (2, 4, 11),
             (6, 2, 10), (8, 6, 7), (9, 8, 1)]
    v = [np.array(p, float) / np.linalg.norm(p) for p in verts]
    for _ in range(subdivisions):   # each triangle into four, new vertices pushed onto the sphere
        cache: dict[tuple[int, int], int] = {}

        def mid(i: int, j: int, cache=cache) -> int:
            key = (min(i, j), max(i, j))
            if key not in cache:
                m = v[i] + v[j]
                v.append(m / np.linalg.norm(m))
                cache[key] = len(v) - 1
            return cache[key]

        faces = [f for a, b, c in faces for f in ((a, mid(a, b), mid(a, c)), (b, mid(b, c), mid(a, b)),
                                                   (c, mid(a, c), mid(b, c)), (mid(a, b), mid(b, c), mid(a, c)))]
    return _mesh_from(np.array(v), np.array(faces), "massive", True)


@lru_cache(maxsize=1)
def needle_mesh() -> Mesh:
    """A thin hexagonal prism with a pointed end (12:1): one fibre of a fibrous or radiating aggregate."""
    ang = np.arange(6) * np.pi / 3
    ring = np.stack([np.cos(ang), np.sin(ang)], 1) * 0.5
    verts = np.concatenate([np.c_[ring, np.zeros(6)], np.c_[ring, np.full(6, 11.0)], [[0, 0, 12.0], [0, 0, 0]]])
    tris = []
    for i in range(6):
        j = (i + 1) % 6
        tris += [(i, j, 6 + j), (i, 6 + j, 6 + i), (6 + i, 6 + j, 12), (j, i, 13)]
    return _mesh_from(verts, np.array(tris), "fibrous", False)


# ---------------------------------------------------------------- bodies that touch, not intersect
def hemisphere_dirs(n: int) -> np.ndarray:
    """``n`` unit directions spread evenly over a hemisphere (a Fibonacci lattice): a direction and
    its opposite measure the same extent, so half the sphere is enough."""
    i = np.arange(n) + 0.5
    phi = np.arccos(1 - i / n)
    theta = np.pi * (1 + 5 ** 0.5) * i
    return np.stack([np.cos(theta) * np.sin(phi), np.sin(theta) * np.sin(phi), np.cos(phi)], 1)


# Two bodies whose extents along some direction do not overlap cannot intersect. Each body is
# stood for by its extents along these 40 directions (its discrete-orientation hull, within a few
# per cent of the body), so bodies pushed clear of each other's hulls touch with at most a hairline gap.
SEP_DIRS = hemisphere_dirs(40)
# The ways a body may be pushed: 32 directions in the picture's plane; where none of those keeps
# it on the matrix, 16 rising at 45 degrees toward the camera (it leans on a neighbour's flank)
# and straight up (it rests on the bodies below it).
_ANGLES = np.arange(32) * np.pi / 16
FLAT_DIRS = np.stack([np.cos(_ANGLES), np.sin(_ANGLES), np.zeros(32)], 1)
RISE_DIRS = np.concatenate([np.stack([np.cos(_ANGLES[::2]), np.sin(_ANGLES[::2]), -np.ones(16)], 1) / 2 ** 0.5,
                            [[0.0, 0.0, -1.0]]])
# How a push moves each extent, inverted: no direction of the lattice is square to a push
# (|dot| >= 2.8e-4), so each can be divided by.
_FLAT_INV, _RISE_INV = 1 / (FLAT_DIRS @ SEP_DIRS.T), 1 / (RISE_DIRS @ SEP_DIRS.T)


def _free_distance(lo: np.ndarray, hi: np.ndarray, lo_others: np.ndarray, hi_others: np.ndarray,
                   inv: np.ndarray) -> np.ndarray:
    """How far a body (extents ``lo``, ``hi`` along SEP_DIRS) must move along each ray (``inv``:
    the inverses of the rays' dot products with SEP_DIRS) to clear every other body
    (``lo_others``, ``hi_others``: (k, dirs)); 0 where it is clear already.

    Moved by ``s`` along a ray, its extent along direction d shifts by s*p (p: the ray's component
    along d); it overlaps another body along d while s*p lies in (lo_o - hi, hi_o - lo). Over all
    directions that is an open interval of s per other body; the answer is the first s >= 0 that
    none of the intervals covers.
    """
    ra = (lo_others - hi)[:, None, :] * inv    # (k, rays, dirs); lo_o - hi <= hi_o - lo always
    rb = (hi_others - lo)[:, None, :] * inv
    s_in = np.minimum(ra, rb).max(-1)                  # (k, rays); empty where s_in >= s_out
    s_out = np.maximum(ra, rb).min(-1)
    s = np.zeros(len(inv))
    while True:   # jump to the farthest end of the intervals covering s: what lies between is covered
        cover = (s_in < s) & (s_out > s)
        if not cover.any():
            return s
        s = np.where(cover.any(0), np.where(cover, s_out, -np.inf).max(0), s)


def separate(bodies: list[np.ndarray], order: np.ndarray, apart: np.ndarray, anchors: np.ndarray,
             slack: np.ndarray, allowed=None) -> np.ndarray:
    """Shifts (n, 3) that leave no two bodies (3-D points, (V, 3) each; z away from the camera)
    intersecting.

    Bodies are placed in ``order``, the first staying put; each later one, where it intersects one
    placed before it (only pairs with ``apart[i, j]`` count), moves the shortest way along one of
    FLAT_DIRS to where it just touches them, its root (``anchors[i]``, x and y) kept where
    ``allowed(points, slack[i]) -> bool array`` says (on the matrix). Where no way in the plane
    keeps it there, it rises along the shortest of RISE_DIRS that does instead.
    """
    n = len(bodies)
    ext = [b @ SEP_DIRS.T for b in bodies]
    lo = np.stack([e.min(0) for e in ext])
    hi = np.stack([e.max(0) for e in ext])
    shift = np.zeros((n, 3))
    placed: list[int] = []
    for i in order.tolist():
        others = [j for j in placed if apart[i, j]]
        placed.append(i)
        if others:   # does it meet any of them where it stands (overlap along every direction)?
            meets = ((lo[others] < hi[i]) & (hi[others] > lo[i])).all(1).any()
        if not others or not meets:
            continue
        rooted = allowed is not None and allowed(anchors[i:i + 1], slack[i])[0]   # on the matrix: stays so
        for rays, inv in ((FLAT_DIRS, _FLAT_INV), (RISE_DIRS, _RISE_INV)):
            s = _free_distance(lo[i], hi[i], lo[others], hi[others], inv)
            ok = allowed(anchors[i] + s[:, None] * rays[:, :2], slack[i]) if rooted else np.ones(len(s), bool)
            if ok.any():   # (straight up always is: the root does not move)
                break
        best = int(np.argmin(np.where(ok, s, np.inf)))   # ties: the first ray, the same everywhere
        t = s[best] * rays[best]
        shift[i] = t
        move = SEP_DIRS @ t
        lo[i] += move
        hi[i] += move
    return shift
