"""Percentile bootstrap confidence intervals, vectorised over resamples.

A bootstrap resample draws N samples with replacement; every metric of ``metrics.py``
depends on a resample only through how often each sample was drawn, so a resample is
a row of counts and a batch of resamples is a ``B x N`` weight matrix that the metric's
``weighted`` form evaluates in one matrix product.

Samples whose features are equal are interchangeable, so when there are few distinct
feature rows (a top-1 hit vector has two) the counts per distinct row are drawn directly
from a multinomial: the same distribution as drawing indices, at a cost independent of N.
Otherwise indices are drawn in chunks and counted with ``bincount``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

DEFAULT_RESAMPLES = 1000
DEFAULT_LEVEL = 0.95
DEFAULT_SEED = 0
MAX_CATEGORIES = 4096      # distinct feature rows up to which the multinomial shortcut is used
CHUNK_CELLS = 4_000_000    # weight-matrix cells per chunk of index resampling (memory bound)


@dataclass(frozen=True)
class Interval:
    """A percentile bootstrap interval of one statistic."""

    low: float
    high: float
    level: float
    n_resamples: int
    seed: int
    method: str = "percentile bootstrap"

    def to_json(self) -> dict:
        return {"low": _num(self.low), "high": _num(self.high), "level": self.level,
                "n_resamples": self.n_resamples, "seed": self.seed, "method": self.method}


def _num(x: float) -> float | None:
    return None if x is None or not np.isfinite(x) else float(x)


def compress(features: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Distinct feature rows and how many samples each stands for.

    A 2-D column (a histogram per sample: ``metrics``' PxAP) makes every sample distinct:
    comparing whole histograms would cost more than the multinomial shortcut saves."""
    names = list(features)
    columns = {k: np.asarray(features[k], dtype=np.float64) for k in names}
    n = len(columns[names[0]])
    if any(c.ndim == 2 for c in columns.values()):
        return columns, np.ones(n, dtype=np.int64)
    # one integer key per row (mixed radix of per-column codes): a 1-D unique is far
    # faster than numpy's row-wise unique
    key = np.zeros(n, dtype=np.int64)
    for k in names:
        u, inv = np.unique(columns[k], return_inverse=True)
        if len(u) and key.max(initial=0) > np.iinfo(np.int64).max // (len(u) + 1):
            # too many combinations for one key: fall back to the row-wise unique
            stacked = np.column_stack([columns[c] for c in names])
            uniq, counts = np.unique(stacked, axis=0, return_counts=True)
            return {c: uniq[:, j] for j, c in enumerate(names)}, counts
        key = key * len(u) + inv.reshape(-1)
    keys, first, counts = np.unique(key, return_index=True, return_counts=True)
    return {k: columns[k][first] for k in names}, counts


def resample_statistics(statistic: Callable[[dict[str, np.ndarray], np.ndarray], np.ndarray],
                        features: dict[str, np.ndarray], *, n_resamples: int = DEFAULT_RESAMPLES,
                        seed: int = DEFAULT_SEED) -> np.ndarray:
    """The statistic on ``n_resamples`` bootstrap resamples (shape ``(n_resamples,)``).

    ``statistic(features, w)`` takes feature columns of length U and a ``B x U`` weight
    matrix and returns B values (the ``weighted`` form of a metric).
    """
    n = len(next(iter(features.values())))
    rng = np.random.default_rng(seed)
    if n == 0:
        return np.full(n_resamples, np.nan)
    compact, counts = compress(features)
    if len(counts) <= MAX_CATEGORIES:
        w = rng.multinomial(n, counts / n, size=n_resamples).astype(np.float64)
        return np.asarray(statistic(compact, w), dtype=np.float64)
    out = np.empty(n_resamples)
    per_chunk = max(1, CHUNK_CELLS // n)
    for start in range(0, n_resamples, per_chunk):
        b = min(per_chunk, n_resamples - start)
        idx = rng.integers(0, n, size=(b, n))
        idx += (np.arange(b) * n)[:, None]
        w = np.bincount(idx.ravel(), minlength=b * n).reshape(b, n).astype(np.float64)
        out[start:start + b] = statistic(features, w)
    return out


def percentile_interval(values: np.ndarray, level: float = DEFAULT_LEVEL) -> tuple[float, float]:
    """The central ``level`` interval of the finite resampled values (NaN if none)."""
    finite = values[np.isfinite(values)]
    if not len(finite):
        return float("nan"), float("nan")
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(finite, [alpha, 1.0 - alpha])
    return float(low), float(high)


def bootstrap_ci(statistic, features: dict[str, np.ndarray], *, n_resamples: int = DEFAULT_RESAMPLES,
                 level: float = DEFAULT_LEVEL, seed: int = DEFAULT_SEED) -> Interval:
    """Percentile bootstrap interval of a weighted statistic (seeded: reproducible)."""
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be positive, got {n_resamples}")
    values = resample_statistics(statistic, features, n_resamples=n_resamples, seed=seed)
    low, high = percentile_interval(values, level)
    return Interval(low=low, high=high, level=level, n_resamples=n_resamples, seed=seed)
