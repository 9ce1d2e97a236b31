"""Split rows come from the task card alone (``TaskCard.positions``/``rows``), and a dataset's
``dataset.json`` is read with one-line errors (``manifest.read_info``)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from minbench.cards import KINDS, all_cards, cards_of_kind, get_card
from minbench.data import manifest
from minbench.errors import UserError


def _frame() -> pd.DataFrame:
    return pd.DataFrame({
        "species": ["a", "a", "b", "c", "c"],
        "fewshot_10": ["train", "test", "", "", ""],
        "zeroshot": [False, False, False, True, True],
        "size": [True, False, False, False, True],
        "segmentation": [False, False, False, False, False],
    })


def test_cards_of_kind_cover_every_card_in_natural_order():
    by_kind = [card.id for kind in KINDS for card in cards_of_kind(kind)]
    assert sorted(by_kind) == sorted(all_cards())
    assert [c.id for c in cards_of_kind("classification")] == ["fewshot-10", "fewshot-98", "fewshot-360"]
    with pytest.raises(ValueError, match="kind"):
        cards_of_kind("nope")


def test_an_empty_test_split_counts_as_zero_only_when_allowed():
    df = _frame()
    seg = get_card("segmentation")
    assert len(seg.positions(df, "test", allow_empty=True)) == 0
    assert seg.rows(df, "test", allow_empty=True).empty
    with pytest.raises(UserError, match="no test rows for task segmentation"):
        seg.positions(df, "test")
    np.testing.assert_array_equal(get_card("size").positions(df, "test"), [0, 4])
    np.testing.assert_array_equal(get_card("fewshot-10").positions(df, "train"), [0])
    # zero-shot trains on every class its test rows do not hold
    np.testing.assert_array_equal(get_card("zeroshot").positions(df, "train"), [0, 1, 2])


def test_dataset_json_errors_are_one_line_and_name_the_file(tmp_path):
    path = tmp_path / manifest.DATASET_FILE
    with pytest.raises(UserError, match="missing \\(not a prepared minbench dataset\\)"):
        manifest.read_info(tmp_path)
    for text, expected in (("{", "not valid JSON"), ("[1, 2]", "JSON object"),
                           ('{"name": "x"}', "no 'version', 'source', 'fingerprint', 'n_samples'")):
        path.write_text(text, encoding="utf-8")
        with pytest.raises(UserError, match=expected) as info:
            manifest.read_info(tmp_path)
        assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_the_cube_edge_is_read_from_the_old_key_too(tmp_path):
    base = {"name": "x", "version": "1", "source": "mineralimage5k", "fingerprint": "f", "n_samples": 0}
    path = tmp_path / manifest.DATASET_FILE
    for extra, expected in (({manifest.CUBE_EDGE_KEY: 2.0}, 2.0), ({"reference_cube_cm": 1.27}, 1.27), ({}, None)):
        path.write_text(json.dumps({**base, **extra}), encoding="utf-8")
        assert manifest.read_info(tmp_path).cube_edge_cm == expected
