"""Seeded, class-balanced picks of manifest rows: the validation carve and ``limit``.

Pure functions of row positions, their class labels and a seed, so the data module's
splits are the same on every machine and every rank.
"""

from __future__ import annotations

import math

import numpy as np


def carve_validation(train: np.ndarray, labels: np.ndarray, fraction: float,
                     seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``(train, val)`` row positions: ``fraction`` of each class of ``train`` (``labels``:
    its rows' classes) set aside, rounded, seeded; a class keeps at least one train row."""
    rank = rank_within_class(labels, np.random.default_rng([seed, 0x7A1]))
    _, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    n_val = np.minimum(np.floor(counts * fraction + 0.5), counts - 1).astype(np.int64)
    is_val = rank < n_val[inverse]
    return train[~is_val], train[is_val]


def limit_rows(positions: np.ndarray, labels: np.ndarray, limit: int | float | None, seed: int,
               salt: int) -> np.ndarray:
    """At most ``limit`` of ``positions`` (an int: that many; a float in (0, 1]: that
    fraction), picked round-robin over the classes of ``labels`` (its rows' classes), seeded
    by ``(seed, salt)``; sorted. ``None``: all of them."""
    if limit is None or not len(positions):
        return positions
    n = limit if isinstance(limit, int) else math.ceil(limit * len(positions))
    if n >= len(positions):
        return positions
    rng = np.random.default_rng([seed, salt])
    keys = rng.random(len(positions))
    rank = rank_within_class(labels, rng)
    chosen = np.lexsort((keys, rank))[:n]  # round-robin over classes: all classes first
    return np.sort(positions[chosen])


def is_valid_limit(limit) -> bool:
    """A positive int, or a float in (0, 1]."""
    if isinstance(limit, bool):
        return False
    if isinstance(limit, int):
        return limit >= 1
    return isinstance(limit, float) and 0 < limit <= 1


def rank_within_class(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random rank of each row among the rows of its class (0, 1, 2, ...)."""
    keys = rng.random(len(labels))
    order = np.lexsort((keys, labels))
    sorted_labels = labels[order]
    starts = np.r_[0, np.flatnonzero(sorted_labels[1:] != sorted_labels[:-1]) + 1]
    run_start = np.repeat(starts, np.diff(np.r_[starts, len(labels)]))
    rank = np.empty(len(labels), np.int64)
    rank[order] = np.arange(len(labels)) - run_start
    return rank
