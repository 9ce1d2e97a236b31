"""The one seed summary behind ``summary.json`` and the leaderboards."""

from __future__ import annotations

import numpy as np
import pytest

from minbench.pipelines.run_folder import summarise
from minbench.scoring.seeds import summarise as summarise_values
from minbench.scoring.seeds import summarise_metrics


def test_mean_std_and_count():
    s = summarise_values([0.2, 0.4, 0.9])
    assert (s.mean, s.n, s.values) == (pytest.approx(0.5), 3, [0.2, 0.4, 0.9])
    assert s.std == float(np.std([0.2, 0.4, 0.9], ddof=1))


def test_one_seed_has_no_spread_and_none_has_no_mean():
    assert summarise_values([0.3]).std is None and summarise_values([0.3]).mean == 0.3
    assert summarise_values([]).mean is None and summarise_values([]).n == 0


def test_metrics_skip_missing_and_non_numeric_values():
    got = summarise_metrics([{"a": 1.0, "b": None, "c": True}, {"a": 3, "b": 2.0, "d": float("inf")}])
    assert list(got) == ["a", "b"]
    assert got["a"].values == [1.0, 3.0] and got["b"].n == 1 and got["b"].std is None
    assert list(summarise_metrics([{"a": 1.0}], names=["z", "a"])) == ["z", "a"]


def test_run_summary_uses_the_same_rule():
    # the run folder's summary.json and a leaderboard entry agree: one seed, std null
    assert summarise([{"top1": 0.5}]) == {"top1": {"mean": 0.5, "std": None, "n": 1, "values": [0.5]}}
    two = summarise([{"top1": 0.5}, {"top1": 0.7}])["top1"]
    assert two["std"] == summarise_values([0.5, 0.7]).std
