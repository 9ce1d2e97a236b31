"""An entry's intervals over its seeds: the seeds' per-sample results pooled
(``stats.seed_mean_interval``), with the scorer's interval settings."""

from __future__ import annotations

from minbench.cards import TaskCard
from minbench.scoring.bootstrap import DEFAULT_LEVEL, DEFAULT_RESAMPLES, DEFAULT_SEED


def entry_ci(card: TaskCard, ci: dict, samples) -> dict:
    """The intervals of the metrics the scorer gave one for (``ci``: metric -> the scorer's
    interval, whose ``n_resamples``, ``level`` and ``seed`` are kept), over the seeds of
    ``samples`` (``samples.Samples``)."""
    from minbench.scoring.stats import seed_mean_interval

    specs = {m.name: m for m in card.metrics}
    return {k: seed_mean_interval(specs[k], samples.tables,
                                  n_resamples=int(v.get("n_resamples", DEFAULT_RESAMPLES)),
                                  level=float(v.get("level", DEFAULT_LEVEL)),
                                  seed=int(v.get("seed", DEFAULT_SEED))).to_json()
            for k, v in ci.items() if k in specs}
