"""Light on a crystal's faces: flat Lambert shading plus a lustre-dependent Blinn specular,
per face, and for metals the studio mirrored in each face (the lustre table says how each
lustre looks)."""

from __future__ import annotations

import numpy as np

from minbench.data.synth.meshes import Placed

LUSTRE = {  # ambient, diffuse, specular strength, shininess, mirror (studio reflection), face-to-face jitter
    "metallic": (0.03, 0.22, 1.00, 30, 1.00, 0.12),
    "submetallic": (0.08, 0.40, 0.85, 24, 0.45, 0.15),
    "adamantine": (0.30, 0.70, 1.20, 60, 0.0, 0.18),
    "vitreous": (0.34, 0.70, 0.65, 32, 0.0, 0.10),
    "pearly": (0.40, 0.60, 0.35, 5, 0.0, 0.06),
    "resinous": (0.34, 0.66, 0.30, 10, 0.0, 0.08),
    "earthy": (0.32, 0.62, 0.0, 1, 0.0, 0.05),
}
LUSTRE["silky"] = LUSTRE["vitreous"]  # fibrous sheen: shaded as vitreous faces
# What a polished face mirrors: the studio's big soft lamp around the light's direction, dim
# surroundings elsewhere (in units of the body colour's brightness).
STUDIO_DIM, STUDIO_LAMP = 0.3, 1.4
# A metal's reflectance is paler than the colour a mineral list gives it (pyrite's brass, gold's
# yellow): this share of its light comes back white.
METAL_WHITE = 0.2


def _studio(normals: np.ndarray, light: np.ndarray) -> np.ndarray:
    """Brightness each flat face mirrors towards the camera: a metal face is as bright as the part
    of the studio it reflects, so faces turned to the lamp blaze and faces turned away go dark."""
    view = np.array([0.0, 0.0, -1.0])                   # from the surface toward the camera
    mirror = 2 * (normals @ view)[:, None] * normals - view
    lamp = np.clip((mirror @ light + 1) / 2, 0, 1) ** 2   # broad: a softbox, not a point
    return STUDIO_DIM + STUDIO_LAMP * lamp


def _expose(out: np.ndarray) -> np.ndarray:
    """Faces brighter than white keep their hue and bleach a little toward white (a mirror of the
    lamp in brass is a bright brass, not the lemon yellow a per-channel clip would make)."""
    peak = out.max(1, keepdims=True)
    over = peak > 1
    if not over.any():
        return np.clip(out, 0, 1)
    scaled = out / np.maximum(peak, 1)
    bleach = np.clip((peak - 1) * 0.35, 0, 0.45)
    return np.where(over, scaled + (1 - scaled) * bleach, np.clip(out, 0, 1))


def shade_faces(rgb: np.ndarray, normals: np.ndarray, light: np.ndarray, lustre: str,
                rng: np.random.Generator) -> np.ndarray:
    """Flat Lambert shading, a lustre-dependent Blinn specular and, for metals, the studio mirrored
    in the face, per face; (F, 3) in 0..1.

    Highlights of a metal are in its own colour (its reflectance is coloured), those of a
    non-metal white (a dielectric reflects every colour alike at its surface).
    """
    amb, kd, ks, shin, mirror, jitter = LUSTRE[lustre]
    view = np.array([0.0, 0.0, -1.0])
    half = light + view
    half /= np.linalg.norm(half)
    diff = np.clip(normals @ light, 0, 1)
    spec = np.clip(normals @ half, 0, 1) ** shin
    face_jit = 1 + rng.normal(0, jitter, len(normals))
    rgb = np.broadcast_to(rgb, normals.shape)
    light_k = amb + kd * diff
    peak = rgb.max(1, keepdims=True)
    # the metal's reflectance at full brightness: its hue, a little paler (white for a non-metal)
    tint = (1 - mirror) + mirror * (METAL_WHITE + (1 - METAL_WHITE) * rgb / np.maximum(peak, 1e-3))
    if mirror:   # the studio comes back off a metal tinted by its reflectance
        light_k = light_k + mirror * _studio(normals, light)
        rgb = rgb * (1 - mirror) + peak * tint * mirror
    body = rgb * light_k[:, None] * face_jit[:, None]
    # a dark metal (magnetite) mirrors the lamp dimmer than a bright one (pyrite)
    out = body + ks * spec[:, None] * tint * (peak ** 0.5 if mirror else 1.0)
    if lustre == "adamantine":  # bright glints on a few faces
        glint = rng.random(len(normals)) < 0.12
        out[glint] = out[glint] * 0.4 + 0.6
    if lustre == "pearly":  # a soft whitish sheen over everything
        out = out * 0.85 + 0.12
    return _expose(out)


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
