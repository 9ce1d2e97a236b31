"""One box parser, one rule for normalised against pixel coordinates (``minbench.data.boxes``)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from minbench.data.boxes import NORMALISED_MAX, box_items, is_normalised, parse_box, parse_box_list, pixel_boxes, \
    to_pixels
from minbench.data.datasets import first_occurrences
from minbench.data.photo import ImageInfo
from minbench.data.release_boxes import best_mineral_box, text_boxes_pixels
from minbench.data.boxes import pixel_boxes as parse_boxes


@pytest.mark.parametrize("box, normalised", [
    ([0.1, 0.2, 0.5, 1.0], True), ([-0.05, 0.0, 1.08, 1.0], True),   # detector overshoot stays normalised
    ([0.1, 0.2, 1.9, 2.0], True), ([0.1, 0.2, 1.9, 2.01], False),     # one cut-off: 2.0
    ([10, 20, 300, 400], False)])
def test_one_cut_off_between_normalised_and_pixels(box, normalised):
    assert NORMALISED_MAX == 2.0
    assert is_normalised(box) is normalised
    px = to_pixels(box, 1000, 800)
    if not normalised:  # pixels stay as they are (clipped to the image)
        assert px == [min(max(v, 0), lim) for v, lim in zip(box, (1000, 800, 1000, 800))]


def test_every_form_parses_to_the_same_box():
    forms = ["[0.1, 0.2, 0.5, 0.6]", "[[0.1, 0.2], [0.5, 0.6]]", "[[0.1,0.2],[0.5,0.2],[0.5,0.6],[0.1,0.6]]",
             '[{"label": "x", "confidence": 0.9, "box": [0.1, 0.2, 0.5, 0.6]}]', "[(0.1, 0.2, 0.5, 0.6)]",
             [0.5, 0.6, 0.1, 0.2]]
    for form in forms:
        assert pixel_boxes(form, 100, 50) == [pytest.approx([10, 10, 50, 30])], form
    assert box_items("not a box") is None and box_items("") == [] and pixel_boxes("[[1, 2]]", 9, 9) == []
    assert parse_box_list('[[1, 2, 3, 4], [5, 6, 7, 8]]') == [(1, 2, 3, 4), (5, 6, 7, 8)]  # two boxes, not a polygon
    assert parse_box("[1, 2, 3, 4]") == (1, 2, 3, 4) and parse_box("[3, 2, 1, 4]") is None


def test_estimator_and_release_read_boxes_alike():
    """The size estimator and `data prepare` give the same pixels for the same cell."""
    cell = json.dumps([{"label": "a", "confidence": 0.4, "box": [0.1, 0.1, 0.4, 0.5]},
                       {"label": "b", "confidence": 0.8, "box": [0.25, 0.3, 0.75, 1.04]}])
    info = ImageInfo(width=600, height=400, orientation=1)
    boxes = parse_boxes(cell, 600, 400, with_confidence=True)
    best = max(boxes, key=lambda bc: bc[1])[0]
    assert json.loads(best_mineral_box(cell, info)) == [round(v, 1) for v in best]
    assert best[3] == 400  # clipped to the image by both
    text = json.dumps([[[0.0, 0.875], [0.5, 1.0]]])
    assert json.loads(text_boxes_pixels(text, info)) == [[round(v, 1) for v in b] for b in parse_boxes(text, 600, 400)]


def test_orientation_turns_stored_boxes_into_the_displayed_frame():
    # stored 400x600 (W x H) shown 600x400 (orientation 6: turned 90 degrees clockwise)
    stored_px = [0, 0, 100, 50]                 # top-left corner of the stored file
    norm = [0, 0, 100 / 400, 50 / 600]
    for box in (stored_px, norm):
        assert to_pixels(box, 600, 400, 6) == pytest.approx([550, 0, 600, 100])  # top-right when shown


def test_one_ddp_de_padding_for_tensors_arrays_and_rows():
    import torch

    assert first_occurrences(torch.tensor([2, 0, 2, 1, 0])).tolist() == [True, True, False, True, False]
    assert first_occurrences(np.array([2, 0, 2])).tolist() == [True, True, False]
    assert first_occurrences([5, "a", 5, None, "a"]).tolist() == [True, True, False, True, False]
