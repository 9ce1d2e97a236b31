"""Statistics across seeds and entries: seed-averaged and paired bootstrap intervals,
class-clustered resampling, the exact McNemar test.

Everything resamples *test samples* through ``bootstrap.py``'s weight matrices and
evaluates the card's metrics with their ``weighted`` forms (``metrics.py``), so a
thousand resamples of several seeds and two entries cost one pass:

- an entry with several seeds: the metric is averaged over seeds within each resample
  (the same sample weights for every seed);
- a paired comparison of A and B: ``mean over A's seeds - mean over B's seeds`` within
  each resample, both on the same resampled sample indices. Where A and B share seeds
  only the shared seeds are used (seed paired with seed, so the difference is the mean
  of the per-seed differences); with none shared, each side's seed mean.
- class clustering (a card metric with ``cluster: class``): a resample draws classes with
  replacement, then images with replacement within each drawn class (two-stage
  bootstrap), so images of one class move together.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from minbench.scoring.bootstrap import (CHUNK_CELLS, DEFAULT_LEVEL, DEFAULT_RESAMPLES, DEFAULT_SEED, Interval, bootstrap_ci,
                                        compress, percentile_interval, resample_statistics)
from minbench.scoring.tables import Table


def cluster_of(spec) -> str | None:
    """The card's clustering of this metric's samples (``"class"`` or None)."""
    return getattr(spec, "cluster", None)


def clusters_for(spec, table: Table) -> np.ndarray | None:
    """Per-sample cluster labels for ``spec`` (the true class), or None."""
    if cluster_of(spec) == "class" and "target" in table:
        return np.asarray(table["target"])
    return None


def resample(statistic: Callable[[Table, np.ndarray], np.ndarray], features: Table, *,
             clusters: np.ndarray | None = None, n_resamples: int = DEFAULT_RESAMPLES,
             seed: int = DEFAULT_SEED) -> np.ndarray:
    """The weighted ``statistic`` on ``n_resamples`` resamples of the samples (i.i.d., or
    two-stage by ``clusters``)."""
    if clusters is None:
        return resample_statistics(statistic, features, n_resamples=n_resamples, seed=seed)
    return _clustered(statistic, features, np.asarray(clusters), n_resamples, seed)


def _clustered(statistic, features: Table, clusters: np.ndarray, n_resamples: int, seed: int) -> np.ndarray:
    n = len(clusters)
    if n == 0:
        return np.full(n_resamples, np.nan)
    rng = np.random.default_rng(seed)
    # samples equal in (cluster, features) are interchangeable: draw counts per distinct row
    compact, counts = compress({**features, "\0cluster": clusters})
    cl = compact.pop("\0cluster")
    order = np.argsort(cl, kind="stable")
    compact = {k: v[order] for k, v in compact.items()}
    counts, cl = counts[order], cl[order]
    starts = np.flatnonzero(np.r_[True, cl[1:] != cl[:-1]])
    ends = np.r_[starts[1:], len(cl)]
    n_clusters = len(starts)
    sizes = np.add.reduceat(counts, starts)
    out = np.empty(n_resamples)
    per_chunk = max(1, CHUNK_CELLS // len(counts))
    for start in range(0, n_resamples, per_chunk):
        b = min(per_chunk, n_resamples - start)
        picks = rng.multinomial(n_clusters, np.full(n_clusters, 1.0 / n_clusters), size=b)  # (b, C)
        w = np.empty((b, len(counts)))
        for j, (lo, hi) in enumerate(zip(starts, ends)):
            trials = picks[:, j] * sizes[j]  # each pick of class j draws its n_j images again
            if hi - lo == 1:
                w[:, lo] = trials
            else:
                w[:, lo:hi] = rng.multinomial(trials, counts[lo:hi] / sizes[j])
        out[start:start + b] = statistic(compact, w)
    return out


def _seed_features(spec, tables: Sequence[Table], tag: str) -> Table:
    from minbench.scoring.metrics import impl

    m = impl(spec)
    return {f"{tag}{i}.{k}": v for i, t in enumerate(tables) for k, v in m.features(spec, t).items()}


def _seed_mean(spec, f: Table, w: np.ndarray, tag: str, n_seeds: int) -> np.ndarray:
    from minbench.scoring.metrics import impl

    m = impl(spec)
    values = []
    for i in range(n_seeds):
        prefix = f"{tag}{i}."
        values.append(m.weighted(spec, {k[len(prefix):]: v for k, v in f.items() if k.startswith(prefix)}, w))
    with np.errstate(invalid="ignore"):
        return np.mean(values, axis=0)


def point(spec, tables: Sequence[Table]) -> float:
    """The metric averaged over seeds (all weights 1: equals the scorer's ``point``)."""
    f = _seed_features(spec, tables, "a")
    n = len(next(iter(f.values())))
    return float(_seed_mean(spec, f, np.ones((1, n)), "a", len(tables))[0])


def seed_mean_interval(spec, tables: Sequence[Table], *, n_resamples: int = DEFAULT_RESAMPLES,
                       level: float = DEFAULT_LEVEL, seed: int = DEFAULT_SEED) -> Interval:
    """Interval of the seed-averaged metric, resampling test samples (clustered where the
    card says so)."""
    f = _seed_features(spec, tables, "a")
    values = resample(lambda ff, w: _seed_mean(spec, ff, w, "a", len(tables)), f,
                      clusters=clusters_for(spec, tables[0]), n_resamples=n_resamples, seed=seed)
    low, high = percentile_interval(values, level)
    return Interval(low=low, high=high, level=level, n_resamples=n_resamples, seed=seed, method=_method(spec, tables))


def _method(spec, tables) -> str:
    how = "class-clustered percentile bootstrap" if cluster_of(spec) == "class" else "percentile bootstrap"
    return how + (f", mean of {len(tables)} seeds" if len(tables) > 1 else "")


def paired_difference(spec, tables_a: Sequence[Table], tables_b: Sequence[Table], *,
                      n_resamples: int = DEFAULT_RESAMPLES, level: float = DEFAULT_LEVEL,
                      seed: int = DEFAULT_SEED) -> tuple[float, Interval]:
    """``metric(A) - metric(B)`` (each averaged over its seeds) and its paired bootstrap
    interval: both on the same resampled sample indices."""
    fa, fb = _seed_features(spec, tables_a, "a"), _seed_features(spec, tables_b, "b")
    f = {**fa, **fb}
    na, nb = len(tables_a), len(tables_b)

    def stat(ff, w):
        return _seed_mean(spec, ff, w, "a", na) - _seed_mean(spec, ff, w, "b", nb)

    n = len(next(iter(f.values())))
    diff = float(stat(f, np.ones((1, n)))[0])
    values = resample(stat, f, clusters=clusters_for(spec, tables_a[0]), n_resamples=n_resamples, seed=seed)
    low, high = percentile_interval(values, level)
    method = "paired " + _method(spec, tables_a)
    return diff, Interval(low=low, high=high, level=level, n_resamples=n_resamples, seed=seed, method=method)


def mcnemar(hit_a: np.ndarray, hit_b: np.ndarray) -> dict:
    """Exact McNemar test of two paired 0/1 vectors: a two-sided binomial test of the
    discordant pairs (``scipy.stats.binomtest``)."""
    from scipy.stats import binomtest

    a, b = np.asarray(hit_a, bool), np.asarray(hit_b, bool)
    only_a, only_b = int(np.sum(a & ~b)), int(np.sum(~a & b))
    p = 1.0 if only_a + only_b == 0 else float(binomtest(only_a, only_a + only_b, 0.5).pvalue)
    return {"only_a": only_a, "only_b": only_b, "p": p}


def metric_ci(spec, table: dict[str, np.ndarray], *, n_resamples: int = DEFAULT_RESAMPLES,
              level: float = DEFAULT_LEVEL, seed: int = DEFAULT_SEED) -> Interval:
    """Bootstrap interval of one card metric on its per-sample table."""
    from minbench.scoring.metrics import impl

    if getattr(spec, "cluster", None):  # samples cluster by class: the two-stage bootstrap
        return seed_mean_interval(spec, [table], n_resamples=n_resamples, level=level, seed=seed)
    m = impl(spec)
    return bootstrap_ci(lambda f, w: m.weighted(spec, f, w), m.features(spec, table),
                        n_resamples=n_resamples, level=level, seed=seed)
