"""Reference baselines of the segmentation task (no classifier): centre, colour, border, blob."""

from __future__ import annotations

import numpy as np
import pytest

from minbench.errors import UserError
from minbench.models import saliency_baselines as sb


def iou(a, b):
    union = np.logical_or(a, b).sum()
    return np.logical_and(a, b).sum() / union if union else 1.0


def museum_photo(h=300, w=400, centre=(170, 150), radius=70, seed=0):
    """A grey gradient backdrop with noise, a saturated orange disc (the 'mineral')."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    bg = 90 + 80 * (yy / h) + 20 * (xx / w)  # top-to-bottom gradient, as studio backdrops are
    img = np.repeat(bg[..., None], 3, axis=2) + rng.normal(0, 4, (h, w, 3))
    disc = (yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 <= radius ** 2
    img[disc] = (220, 120, 30) + rng.normal(0, 6, (disc.sum(), 3))
    return np.clip(img, 0, 255).astype(np.uint8), disc


def test_border_background_finds_the_specimen_on_a_gradient():
    img, truth = museum_photo()
    score, mask = sb.border_background(img)
    assert mask.shape == truth.shape and score.shape == truth.shape
    assert 0.0 <= score.min() and score.max() <= 1.0
    assert iou(mask, truth) > 0.85


def test_border_keeps_the_largest_component_only():
    img, truth = museum_photo()
    img[20:50, 330:370] = (30, 30, 200)  # a small blue 'reference cube' in a corner
    _, mask = sb.border_background(img)
    assert not mask[20:50, 330:370].any()
    _, both = sb.border_background(img, largest_component=False)
    assert both[20:50, 330:370].mean() > 0.5
    assert iou(mask, truth) > 0.85


def test_colour_saliency_prefers_the_coloured_disc():
    img, truth = museum_photo()
    _, mask = sb.colour_saliency(img)
    assert iou(mask, truth) > 0.6


def test_centre_prior_is_a_centred_ellipse():
    score, mask = sb.centre_prior(np.zeros((100, 200, 3), np.uint8), scale=0.6)
    assert mask.shape == (100, 200)
    assert mask[50, 100] and not mask[0, 0] and not mask[50, 20]
    expected_area = np.pi * 0.3 * 200 * 0.3 * 100
    assert abs(mask.sum() - expected_area) / expected_area < 0.03
    assert score[50, 100] == score.max()


def test_uniform_image_gives_empty_masks_not_errors():
    flat = np.full((64, 80, 3), 128, np.uint8)
    for name in ("colour", "border", "blob"):
        _, mask = sb.run_baseline(name, flat)
        assert mask.shape == (64, 80) and not mask.any()


def test_grayscale_and_rgba_are_accepted():
    img, truth = museum_photo()
    gray = img.mean(axis=2).astype(np.uint8)
    assert sb.run_baseline("border", gray)[1].shape == truth.shape
    rgba = np.concatenate([img, np.full(img.shape[:2] + (1,), 255, np.uint8)], axis=2)
    assert iou(sb.run_baseline("border", rgba)[1], truth) > 0.85


def test_bad_inputs():
    with pytest.raises(UserError, match="H x W x 3"):
        sb.run_baseline("border", np.zeros((5, 5, 7), np.uint8))
    with pytest.raises(UserError, match="unknown"):
        sb.run_baseline("sobel", np.zeros((5, 5, 3), np.uint8))
