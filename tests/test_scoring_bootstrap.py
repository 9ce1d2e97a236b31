"""The vectorised bootstrap agrees with plain index resampling and with SciPy."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from minbench.cards import get_card
from minbench.scoring import bootstrap as B
from minbench.scoring import metrics as M
from minbench.scoring import stats as S
from minbench.scoring import tables as T


def _spec(task, name):
    return next(m for m in get_card(task).metrics if m.name == name)


def test_compress_keeps_counts_and_values():
    rng = np.random.default_rng(0)
    f = {"a": rng.integers(0, 3, 500).astype(float), "b": rng.integers(0, 2, 500).astype(float)}
    compact, counts = B.compress(f)
    assert counts.sum() == 500 and len(counts) <= 6
    pairs = {(a, b): c for a, b, c in zip(compact["a"], compact["b"], counts)}
    for (a, b), c in pairs.items():
        assert c == np.sum((f["a"] == a) & (f["b"] == b))


def test_top1_interval_matches_scipy_and_index_resampling(monkeypatch):
    rng = np.random.default_rng(1)
    n = 2000
    target = rng.integers(0, 20, n)
    ranked = np.where(rng.random(n) < 0.4, target, (target + 1) % 20)[:, None]
    table = T.classification_table(ranked, target)
    spec = _spec("fewshot-98", "top1")
    fast = S.metric_ci(spec, table, n_resamples=4000, seed=0)
    hit = (table["pos"] == 0).astype(float)
    ref = stats.bootstrap((hit,), np.mean, n_resamples=4000, method="percentile", random_state=0).confidence_interval
    assert fast.low == pytest.approx(ref.low, abs=0.004) and fast.high == pytest.approx(ref.high, abs=0.004)
    monkeypatch.setattr(B, "MAX_CATEGORIES", 0)  # force drawing indices
    slow = S.metric_ci(spec, table, n_resamples=4000, seed=0)
    assert slow.low == pytest.approx(fast.low, abs=0.004) and slow.high == pytest.approx(fast.high, abs=0.004)
    width = fast.high - fast.low
    se = np.sqrt(hit.mean() * (1 - hit.mean()) / n)
    assert width == pytest.approx(2 * 1.96 * se, rel=0.1)


def test_macro_recall_interval_two_paths_agree(monkeypatch):
    rng = np.random.default_rng(2)
    n = 1500
    target = rng.integers(0, 12, n)
    ranked = np.where(rng.random(n) < 0.5 + 0.03 * target, target, (target + 3) % 12)[:, None]
    table = T.classification_table(ranked, target)
    spec = _spec("fewshot-98", "macro_recall")
    fast = S.metric_ci(spec, table, n_resamples=3000, seed=1)
    monkeypatch.setattr(B, "MAX_CATEGORIES", 0)
    slow = S.metric_ci(spec, table, n_resamples=3000, seed=1)
    point = M.impl(spec).point(spec, table)
    assert fast.low < point < fast.high
    assert slow.low == pytest.approx(fast.low, abs=0.006) and slow.high == pytest.approx(fast.high, abs=0.006)


def test_mae_interval_matches_scipy():
    rng = np.random.default_rng(3)
    true = rng.uniform(1, 30, 800)
    pred = true + rng.normal(0, 2, 800)
    table = T.size_table(pred, true)
    spec = _spec("size", "mae")
    got = S.metric_ci(spec, table, n_resamples=3000, seed=0)
    ref = stats.bootstrap((np.abs(pred - true),), np.mean, n_resamples=3000, method="percentile",
                          random_state=0).confidence_interval
    assert got.low == pytest.approx(ref.low, abs=0.03) and got.high == pytest.approx(ref.high, abs=0.03)


def test_seeded_and_reproducible():
    table = T.size_table(np.linspace(1, 10, 50) + 0.5, np.linspace(1, 10, 50))
    spec = _spec("size", "r2")
    a = S.metric_ci(spec, table, seed=5)
    assert a == S.metric_ci(spec, table, seed=5)
    assert a.to_json()["n_resamples"] == 1000 and a.to_json()["method"] == "percentile bootstrap"


def test_undefined_resamples_are_left_out_not_crashing():
    table = T.size_table(np.array([np.nan, 2.0, np.nan]), np.array([1.0, 2.0, 3.0]))
    ci = S.metric_ci(_spec("size", "mae"), table, n_resamples=200)
    assert ci.low == ci.high == 0.0  # resamples with no answer give NaN and are dropped
    none = S.metric_ci(_spec("size", "mae"), T.size_table(np.array([np.nan]), np.array([1.0])))
    assert none.to_json()["low"] is None
