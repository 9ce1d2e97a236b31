"""Generalised zero-shot: the seen-unseen accuracy curve of calibrated stacking."""

from __future__ import annotations

import numpy as np
import pytest

from minbench.scoring.gzsl import seen_unseen_curve


def _brute(d_s, ok_s, lab_s, d_u, ok_u, lab_u, gamma):
    def per_class(ok, lab):
        return np.mean([ok[lab == c].mean() for c in np.unique(lab)])
    return per_class(ok_s & (d_s >= gamma), lab_s), per_class(ok_u & (d_u < gamma), lab_u)


def test_separable_and_always_right_gives_full_area():
    d_s, d_u = np.array([2.0, 3.0]), np.array([-1.0, 0.5])
    curve = seen_unseen_curve(d_s, [True, True], [0, 1], d_u, [True, True], [0, 1])
    assert curve["ausuc"] == pytest.approx(1.0) and curve["best_h"] == pytest.approx(1.0)
    assert 0.5 < curve["best_gamma"] <= 2.0


def test_curve_matches_a_brute_force_sweep():
    rng = np.random.default_rng(0)
    d_s, d_u = rng.normal(1, 1, 40), rng.normal(0, 1, 30)
    ok_s, ok_u = rng.random(40) < 0.6, rng.random(30) < 0.4
    lab_s, lab_u = rng.integers(0, 7, 40), rng.integers(0, 5, 30)
    curve = seen_unseen_curve(d_s, ok_s, lab_s, d_u, ok_u, lab_u)
    gammas = np.unique(np.concatenate([d_s, d_u, [-np.inf, np.inf]]))
    points = np.array([_brute(d_s, ok_s, lab_s, d_u, ok_u, lab_u, g) for g in gammas])
    hs = [2 * a * b / (a + b) if a + b > 0 else 0 for a, b in points]
    assert curve["best_h"] == pytest.approx(max(hs))
    area = np.sum(np.diff(points[:, 1]) * (points[1:, 0] + points[:-1, 0]) / 2)
    assert curve["ausuc"] == pytest.approx(area)
    # ends of the sweep: everything seen (unseen acc 0) ... everything unseen (seen acc 0)
    assert points[0][1] == 0 and points[-1][0] == 0
