"""Light on a crystal's faces: flat Lambert shading plus a lustre-dependent Blinn specular,
per face (the lustre table says how each lustre looks)."""

from __future__ import annotations

import numpy as np

from minbench.data.synth.meshes import Placed

LUSTRE = {  # ambient, diffuse, specular strength, shininess, specular tint by body colour, face-to-face jitter
    "metallic": (0.10, 0.45, 1.10, 14, 0.75, 0.35),
    "submetallic": (0.16, 0.55, 0.80, 18, 0.45, 0.25),
    "adamantine": (0.30, 0.70, 1.20, 60, 0.05, 0.18),
    "vitreous": (0.34, 0.70, 0.65, 32, 0.0, 0.10),
    "pearly": (0.40, 0.60, 0.35, 5, 0.0, 0.06),
    "resinous": (0.34, 0.66, 0.30, 10, 0.2, 0.08),
    "earthy": (0.32, 0.62, 0.0, 1, 0.0, 0.05),
}


def shade_faces(rgb: np.ndarray, normals: np.ndarray, light: np.ndarray, lustre: str,
                rng: np.random.Generator) -> np.ndarray:
    """Flat Lambert shading plus a lustre-dependent Blinn specular, per face; (F, 3) in 0..1."""
    amb, kd, ks, shin, tint, jitter = LUSTRE.get(lustre, LUSTRE["vitreous"])
    view = np.array([0.0, 0.0, -1.0])
    half = light + view
    half /= np.linalg.norm(half)
    diff = np.clip(normals @ light, 0, 1)
    spec = np.clip(normals @ half, 0, 1) ** shin
    face_jit = 1 + rng.normal(0, jitter, len(normals))
    rgb = np.broadcast_to(rgb, normals.shape)
    body = rgb * (amb + kd * diff[:, None]) * face_jit[:, None]
    spec_col = (1 - tint) + tint * rgb
    out = body + ks * spec[:, None] * spec_col
    if lustre == "adamantine":  # bright glints on a few faces
        glint = rng.random(len(normals)) < 0.12
        out[glint] = out[glint] * 0.4 + 0.6
    if lustre == "pearly":  # a soft whitish sheen over everything
        out = out * 0.85 + 0.12
    return np.clip(out, 0, 1)


def face_colours(placed: Placed, rgb: np.ndarray, rgb2: np.ndarray | None, light: np.ndarray, lustre: str,
                 rng: np.random.Generator) -> np.ndarray:
    """Each face's shaded colour (F, 3) in 0..1: ``rgb``, or zoned ``rgb``/``rgb2`` along the
    crystal's long axis, under ``light`` by the ``lustre``."""
    mesh = placed.mesh
    if rgb2 is None:
        base = np.broadcast_to(rgb, (len(mesh.normals), 3))
    else:  # zoned/banded: the two tones split along the crystal's long axis
        axis = int(np.argmax(np.ptp(mesh.vertices, axis=0)))
        centres = np.zeros(len(mesh.normals))
        np.add.at(centres, mesh.face_of, mesh.vertices[mesh.triangles].mean(1)[:, axis])
        counts = np.bincount(mesh.face_of, minlength=len(mesh.normals))
        centres /= np.maximum(counts, 1)
        base = np.where((centres > 0)[:, None], rgb2[None, :], rgb[None, :])
    return shade_faces(np.asarray(base), placed.normals, light, lustre, rng)
