"""How the embedded dataset's photos are drawn: framing that does not give the size away, crystals
that touch rather than pass through each other, contact shadows, metals that look metallic."""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest
from minbench.data.synth import render as R
from minbench.data.synth import settle as S
from minbench.data.synth.canvas import BG, MATRIX
from minbench.data.synth.meshes import SEP_DIRS, place
from minbench.data.synth.scene import sample_scene
from minbench.data.synth.shading import shade_faces
from minbench.data.synth.species import all_classes
from minbench.data.synth.splits import make_plan, size_config


@pytest.fixture(scope="module")
def scenes():
    """The tiny plan's first 80 scenes, drawn at the small size's resolution."""
    classes = all_classes()
    plan = make_plan(classes, size_config("tiny"), 0)
    out = []
    for r in plan.rows[:80]:
        rng = np.random.default_rng([0, r.index])
        sat = classes[r.satellite] if r.satellite is not None else None
        out.append((sample_scene(classes[r.cls], rng, width=1024, height=768, satellite=sat), r.index))
    return out


def _settled(scene):
    blob = R._blob_polygon(scene, np.zeros(2), 1.0) if scene.matrix else np.zeros((0, 2))
    unit = [place(c.mesh, c.rotation, c.size, c.offset, c.stretch) for c in scene.crystals]
    S.settle(scene, blob, unit)
    return blob, unit


def test_crystals_touch_but_do_not_pass_through_each_other(scenes):
    met, moved = 0, 0
    for scene, _ in scenes:
        blob, unit = _settled(scene)
        ext = [S.rooted(u, 0.0) @ SEP_DIRS.T for u in unit]
        on = S.on_matrix(blob) if len(blob) else None
        for i, c in enumerate(scene.crystals):
            for j in range(i):
                if S.fused(c) and S.fused(scene.crystals[j]) and c.satellite == scene.crystals[j].satellite:
                    continue   # lumps, grains, fibres of one aggregate grow into each other
                gap = np.maximum(ext[j].min(0) - ext[i].max(0), ext[i].min(0) - ext[j].max(0)).max()
                assert gap >= -1e-9, (scene.description, i, j)   # some direction separates them
                met += gap < 0.02 * min(c.size, scene.crystals[j].size)   # and many just touch
            shift = unit[i].xy[0] - place(c.mesh, c.rotation, c.size, c.offset, c.stretch).xy[0]
            foot = c.size / 3   # its centre may stand this far off the matrix, its foot still on it
            if on is not None and on(np.array([c.offset]), foot)[0] and unit[i].lift == 0 and shift.any():
                moved += 1   # pushed aside in the plane: still rooted on the matrix
                assert on(np.array([c.offset]) + shift, foot)[0], scene.description
    assert met > 20 and moved > 20


def test_the_specimen_fills_the_frame_alike_whatever_its_size(scenes):
    """Framing is the photographer's: the specimen's share of the photo does not follow its size
    (only where the cube at true scale leaves it no room is it drawn smaller); the scale does
    (the cube set in the specimen's plane here, so the scale is in inverse proportion to the size)."""
    tried = 0
    for scene, index in scenes[:30]:
        boxes, scales = [], []
        for size in (6.0, 12.0, 24.0):
            img, labels, truth = R.render(dataclasses.replace(scene, size_cm=size, depth_cm=0.0),
                                         np.random.default_rng(index))
            boxes.append(truth.bbox)
            scales.append(truth.px_per_cm)
        extent = [max(b[2] - b[0], b[3] - b[1]) for b in boxes]
        if extent[0] < extent[2] - 2:   # shrunk at 6 cm to make room for the cube: allowed, not the rule
            continue
        tried += 1
        assert max(extent) - min(extent) <= 2, scene.description
        assert scales[0] == pytest.approx(2 * scales[1], rel=1e-6)
        assert scales[1] == pytest.approx(2 * scales[2], rel=1e-6)
    assert tried >= 20


def test_the_backdrop_is_darker_where_the_matrix_rests_on_it(scenes):
    near, far = [], []
    for scene, index in scenes:
        if not scene.matrix or scene.background not in ("grey", "white"):
            continue
        img, labels, _ = R.render(scene, np.random.default_rng(index))
        grey = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY).astype(float)
        matrix = (labels == MATRIX).astype(np.uint8)
        ring = cv2.dilate(matrix, np.ones((7, 7), np.uint8)) & (labels == BG)
        out = (cv2.dilate(matrix, np.ones((81, 81), np.uint8)) & ~cv2.dilate(matrix, np.ones((61, 61), np.uint8))
               & (labels == BG))
        if ring.sum() > 50 and out.sum() > 50:
            near.append(grey[ring > 0].mean())
            far.append(grey[out > 0].mean())
    assert len(near) >= 5
    assert np.median(np.array(near) / np.array(far)) < 0.9


def _faces(n: int = 400) -> np.ndarray:
    """Face normals facing the camera (z < 0) in all directions."""
    v = np.random.default_rng(0).normal(size=(n, 3))
    v[:, 2] = -np.abs(v[:, 2])
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_metals_are_bright_mirrors_in_their_own_colour_and_other_highlights_are_white():
    light = np.array([0.3, -0.5, -0.8]) / np.linalg.norm([0.3, -0.5, -0.8])
    normals = _faces()
    pyrite = shade_faces(np.array([215, 185, 65]) / 255, normals, light, "metallic", np.random.default_rng(1))
    bright = pyrite[np.argsort(pyrite.sum(1))[-40:]]
    assert bright.max(1).min() > 0.9                              # faces that blaze
    assert (bright[:, 0] > bright[:, 1]).all() and (bright[:, 2] < 0.8 * bright[:, 0]).all()   # in brass
    assert np.quantile(pyrite.max(1), 0.1) < 0.45                 # and faces turned away, dark
    galena = shade_faces(np.array([119, 121, 125]) / 255, normals, light, "metallic", np.random.default_rng(1))
    assert np.quantile(galena.mean(1), 0.9) > 0.7 and np.ptp(galena, axis=1).max() < 0.1   # bright lead-grey
    red = np.array([0.7, 0.1, 0.1])
    glass = shade_faces(red, normals, light, "vitreous", np.random.default_rng(1))
    top = glass[np.argmax(glass.sum(1))]
    assert top[1] > 0.5 and top[2] > 0.5                           # a red crystal's highlight is white
