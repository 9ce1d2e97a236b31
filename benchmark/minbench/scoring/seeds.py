"""The one seed summary: a metric's per-seed values to mean, spread and count.

A run's ``summary.json`` (``pipelines/run_folder.py``) and a leaderboard entry's ``metrics``
and ``std`` (``scoring/leaderboard``) both come from ``summarise``, so the two never disagree:
the sample standard deviation (ddof 1) is ``None`` for a single seed, the spread of one value
being undefined (not 0).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import numpy as np


@dataclass(frozen=True)
class SeedSummary:
    """One metric over seeds: ``mean`` (None without values), ``std`` (ddof 1; None for
    fewer than two values), ``n`` values, and the ``values`` themselves in seed order."""

    mean: float | None
    std: float | None
    n: int
    values: list[float]

    def to_json(self) -> dict[str, Any]:
        return {"mean": self.mean, "std": self.std, "n": self.n, "values": list(self.values)}


def is_number(value: Any) -> bool:
    """A finite int or float (a bool, None, NaN or a string is not a seed's value)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(float(value))


def summarise(values: Iterable[float]) -> SeedSummary:
    """Mean and sample standard deviation (ddof 1) of one metric's per-seed values."""
    vals = [float(v) for v in values]
    arr = np.array(vals, dtype=np.float64)
    return SeedSummary(mean=float(arr.mean()) if len(arr) else None,
                       std=float(arr.std(ddof=1)) if len(arr) >= 2 else None, n=len(vals), values=vals)


def summarise_metrics(per_seed: Sequence[dict[str, Any]],
                      names: Iterable[str] | None = None) -> dict[str, SeedSummary]:
    """``summarise`` of each metric over seeds (``per_seed``: one ``{metric: value}`` per
    seed). A seed without a numeric value for a metric is left out of that metric only.
    ``names``: the metrics to summarise, in order (default: every metric with a numeric
    value in some seed, in order of first appearance)."""
    if names is None:
        names = []
        for m in per_seed:
            names += [k for k, v in m.items() if is_number(v) and k not in names]
    return {k: summarise(m[k] for m in per_seed if is_number(m.get(k))) for k in names}
