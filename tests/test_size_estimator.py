"""The cube-based size estimator on drawn museum scenes whose truth is exact, and on bad photos."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from test_size_scenes import draw_scene, rotation

from minbench.errors import UserError
from minbench.models.size_authors import AuthorsRule, authors_estimate
from minbench.data.boxes import pixel_boxes as parse_boxes
from minbench.models.size import SizeConfig, SizeEstimator, draw_estimate


@pytest.fixture(scope="module")
def estimator():
    return SizeEstimator()


def test_sizes_and_scale_match_the_truth_on_drawn_scenes(estimator):
    errs, answered = [], 0
    for seed in range(12):
        img, truth = draw_scene(seed, width=640, height=480, bg=["grey", "black", "white"][seed % 3])
        est = estimator.estimate(img)
        if not est.answered:
            continue
        answered += 1
        assert est.px_per_cm == pytest.approx(truth["px_per_cm"], rel=0.05)
        errs.append(abs(est.size_cm - truth["size_cm"]) / truth["size_cm"])
        assert est.reason == ""
    assert answered >= 11
    assert np.mean(errs) < 0.04


def test_cube_edge_and_extent_are_settings():
    img, truth = draw_scene(1, width=640, height=480)
    base = SizeEstimator().estimate(img)
    double = SizeEstimator(SizeConfig(cube_edge_cm=2.54)).estimate(img)
    diag = SizeEstimator(SizeConfig(extent="diagonal")).estimate(img)
    assert double.size_cm == pytest.approx(2 * base.size_cm, rel=1e-6)
    assert diag.size_cm > base.size_cm
    w, h = base.specimen_bbox[2] - base.specimen_bbox[0], base.specimen_bbox[3] - base.specimen_bbox[1]
    assert diag.size_cm == pytest.approx(np.hypot(w, h) / base.px_per_cm, rel=1e-6)


@pytest.mark.parametrize("raw, message", [
    ({"cube_edge": 1.0}, "unknown setting"),
    ({"extent": "area"}, "extent"),
    ({"cube_edge_cm": -1}, "cube_edge_cm"),
])
def test_bad_settings_are_user_errors(raw, message):
    with pytest.raises(UserError, match=message):
        SizeConfig.from_dict(raw)


def test_no_cube_abstains_with_reason(estimator):
    img, _ = draw_scene(2, width=640, height=480, n_cubes=0)
    est = estimator.estimate(img)
    assert not est.answered and "no reference cube" in est.reason
    assert est.specimen_bbox is not None  # the specimen is still drawn in the gallery


def test_two_cubes_abstain(estimator):
    img, _ = draw_scene(4, width=640, height=480, n_cubes=2)
    est = estimator.estimate(img)
    assert not est.answered and "2 cube-like objects" in est.reason
    assert len(est.candidates) == 2


def test_cube_cut_by_the_frame_abstains(estimator):
    img, truth = draw_scene(5, width=640, height=480, cube_at=(634, 240))
    est = estimator.estimate(img)
    assert not est.answered and "cut by the frame" in est.reason


@pytest.mark.parametrize("image, reason", [
    (np.zeros((20, 30, 3), np.uint8), "too small"),
    (np.full((300, 400, 3), 128, np.uint8), "blank"),
    (np.zeros((0, 0, 3), np.uint8), "too small"),
    (np.zeros((5, 5, 5), np.uint8), "unreadable"),
])
def test_tiny_blank_and_malformed_images_abstain(estimator, image, reason):
    est = estimator.estimate(image)
    assert not est.answered and reason in est.reason


def test_grayscale_photo_is_answered_with_a_flag_or_abstains(estimator):
    img, truth = draw_scene(6, width=640, height=480)
    grey = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    est = estimator.estimate(grey)
    if est.answered:
        assert any("grayscale" in f for f in est.flags)
        assert est.size_cm == pytest.approx(truth["size_cm"], rel=0.1)
    else:
        assert est.reason


def test_torch_chw_and_float_images_are_accepted(estimator):
    torch = pytest.importorskip("torch")
    img, truth = draw_scene(7, width=640, height=480)
    a = estimator.estimate(img)
    b = estimator.estimate(torch.from_numpy(img).permute(2, 0, 1))
    c = estimator.estimate(img.astype(np.float32) / 255.0)
    assert a.answered and b.size_cm == pytest.approx(a.size_cm)
    assert c.size_cm == pytest.approx(a.size_cm, rel=0.01)


def test_release_mineral_boxes_set_the_specimen(estimator):
    img, truth = draw_scene(8, width=640, height=480)
    x1, y1, x2, y2 = truth["bbox"]
    boxes = json.dumps([{"label": "mineral", "confidence": 0.9, "box": [x1 / 640, y1 / 480, x2 / 640, y2 / 480]},
                        {"label": "mineral", "confidence": 0.01, "box": [0, 0, 1, 1]}])
    est = estimator.estimate(img, mineral_boxes=boxes)
    assert est.specimen_source == "mineral_boxes"
    assert est.specimen_bbox == pytest.approx([x1, y1, x2, y2], abs=1e-6)
    assert est.size_cm == pytest.approx(truth["size_cm"], rel=0.03)
    off = SizeEstimator(SizeConfig(use_mineral_boxes=False)).estimate(img, mineral_boxes=boxes)
    assert off.specimen_source == "segmentation"


def test_text_boxes_keep_a_plain_plate_out_of_the_specimen(estimator):
    img, truth = draw_scene(9, width=640, height=480, label=False)
    # a coloured plate without readable text, apart from the specimen and bigger than it
    cv2.rectangle(img, (20, 340), (620, 460), (200, 170, 60), -1)
    plate = [[20 / 640, 340 / 480], [620 / 640, 460 / 480]]
    fooled = estimator.estimate(img)
    est = estimator.estimate(img, text_boxes=json.dumps([plate]))
    assert est.size_cm == pytest.approx(truth["size_cm"], rel=0.05)
    assert fooled.specimen_bbox != est.specimen_bbox


def test_parse_boxes_reads_release_formats():
    assert parse_boxes("[[[0.1, 0.2], [0.3, 0.4]]]", 100, 50) == [pytest.approx([10, 10, 30, 20])]
    assert parse_boxes("[[10, 20, 30, 40]]", 100, 50) == [[10, 20, 30, 40]]
    assert parse_boxes("not json", 100, 50) == []
    assert parse_boxes("", 100, 50) == []


def test_authors_rule_measures_a_frontal_cube_and_truncates():
    # facing a long-focus camera, a cube shows one square face
    img, truth = draw_scene(10, width=1024, height=768, cube_rot=rotation(0, 0, 0.05), px_per_cm=40,
                            cube_at=(512, 90), fov_deg=5.0)
    spec = truth["bbox"]
    exact = authors_estimate(img, spec, AuthorsRule(truncate=False))
    assert exact.px_per_cm == pytest.approx(40, rel=0.08)
    trunc = authors_estimate(img, spec)
    assert trunc.size_cm == np.floor(exact.size_cm)


def test_authors_rule_abstains_without_a_square(estimator):
    img, _ = draw_scene(2, width=640, height=480, n_cubes=0, label=False)
    assert np.isnan(authors_estimate(img, [0, 0, 10, 10]).size_cm)


def test_drawing_keeps_the_photo_shape(estimator):
    img, truth = draw_scene(11, width=640, height=480)
    est = estimator.estimate(img)
    out = draw_estimate(img, est, true_bbox=truth["bbox"])
    assert out.shape == img.shape and out.dtype == np.uint8 and not np.array_equal(out, img)


def test_a_specimen_smaller_than_the_cube_is_not_measured(estimator):
    from test_size_scenes import background, draw_cube

    rng = np.random.default_rng(3)
    img = np.ascontiguousarray(background(480, 640, rng, "black"))
    draw_cube(img, (450, 240), 40.0, rotation(0.7, -0.5))
    cv2.circle(img, (200, 240), 8, (180, 120, 60), -1)  # a speck, not a museum specimen
    est = estimator.estimate(img)
    assert not est.answered and "smaller than the cube" in est.reason
