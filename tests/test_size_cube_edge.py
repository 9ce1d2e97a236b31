"""The size task's cube edge: the dataset's (``TaskContext.cube_edge_cm``), a recipe number
over it, the authors' fallback when the dataset does not say; one spelling of that fallback."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest
from test_size_scenes import draw_scene

from minbench.cards import get_card
from minbench.data.context import TaskContext
from minbench.models.size import FALLBACK_CUBE_EDGE_CM
from minbench.trainers.size import SizeTask

FRAME = pd.DataFrame({"mineral_boxes": [""], "text_boxes": [""]})


def _context(edge: float | None) -> TaskContext:
    return TaskContext(card=get_card("size"), root=Path("."), source="synth", frame=FRAME, cube_edge_cm=edge)


def _measure(model: SizeTask, img):
    est, auth, _ = model.measure(img)
    return est, auth


def test_the_dataset_edge_sets_the_scale_proportionally():
    img, _ = draw_scene(1, width=640, height=480)
    model = SizeTask(threads=1)
    model.configure_data(_context(FALLBACK_CUBE_EDGE_CM))
    base, base_auth = _measure(model, img)
    assert base.answered and model.config.cube_edge_cm == FALLBACK_CUBE_EDGE_CM
    model.configure_data(_context(2 * FALLBACK_CUBE_EDGE_CM))
    double, double_auth = _measure(model, img)
    assert model.config.cube_edge_cm == model.authors_rule.cube_edge_cm == 2 * FALLBACK_CUBE_EDGE_CM
    assert double.px_per_cm == pytest.approx(base.px_per_cm / 2, rel=1e-9)
    assert double.size_cm == pytest.approx(2 * base.size_cm, rel=1e-9)
    if base_auth.px_per_cm == base_auth.px_per_cm:  # the authors' rule found a square: same scale rule
        assert double_auth.px_per_cm == pytest.approx(base_auth.px_per_cm / 2, rel=1e-9)


def test_a_recipe_number_overrides_the_dataset_and_none_falls_back():
    img, _ = draw_scene(1, width=640, height=480)
    given = SizeTask(threads=1, cube_edge_cm=2.54)
    given.configure_data(_context(5.0))
    assert given.config.cube_edge_cm == 2.54
    silent = SizeTask(threads=1)
    silent.configure_data(_context(None))  # a dataset.json without cube_edge_cm
    assert silent.config.cube_edge_cm == FALLBACK_CUBE_EDGE_CM
    assert _measure(given, img)[0].px_per_cm == pytest.approx(
        _measure(silent, img)[0].px_per_cm * FALLBACK_CUBE_EDGE_CM / 2.54, rel=1e-9)


def test_the_fallback_edge_is_spelled_once():
    root = Path(__file__).resolve().parents[1]
    files = [*(root / "benchmark/minbench/models").rglob("*.py"), *(root / "benchmark/minbench/trainers").rglob("*.py"),
             root / "baselines/size-cube.yaml"]
    spelled = [f"{p.relative_to(root)}:{i}" for p in files
               for i, line in enumerate(p.read_text().splitlines(), 1) if re.search(r"\b1\.27\b", line)]
    assert len(spelled) == 1 and spelled[0].startswith("benchmark/minbench/models/size/settings.py:"), spelled
