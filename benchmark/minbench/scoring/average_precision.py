"""Exact average precision of score maps from pixel counts per level (PxAP).

A score map's pixels that share a level tie, so counting mineral and background pixels at
each of the 65,536 levels of a 16-bit map gives average precision exactly, as
scikit-learn's ``average_precision_score`` on the pooled pixels would, in memory bounded by
the number of levels (Choe et al., CVPR 2020, score the map itself rather than one cut of it).
"""

from __future__ import annotations

import numpy as np

#: levels of a score map: 16-bit; an 8-bit map's value v is level 257 v (255 -> 65535)
MAP_LEVELS = 1 << 16


def map_levels(score: np.ndarray) -> np.ndarray:
    """A score map's values (uint8 or uint16, as its PNG holds them) as 16-bit levels."""
    score = np.asarray(score)
    if score.dtype == np.uint8:
        return score.astype(np.uint16) * np.uint16(257)
    if score.dtype != np.uint16:
        raise ValueError(f"a score map is uint8 or uint16, got {score.dtype}")
    return score


def map_histograms(score: np.ndarray, true: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mineral and background pixels at each of the map's 65,536 levels: two uint32 arrays."""
    levels, true = map_levels(score), np.asarray(true, dtype=bool)
    if levels.shape != true.shape:
        raise ValueError(f"map and mask shapes differ: map {levels.shape}, true {true.shape}")
    every = np.bincount(levels.ravel(), minlength=MAP_LEVELS)
    pos = np.bincount(levels[true], minlength=MAP_LEVELS)
    return pos.astype(np.uint32), (every - pos).astype(np.uint32)


def average_precision(pos: np.ndarray, neg: np.ndarray) -> np.ndarray:
    """AP from pixel counts per level (``... x L``, levels ascending): each level is one
    threshold (its pixels tie), AP = sum over levels of the recall gained there times the
    precision at it, as scikit-learn's ``average_precision_score``; NaN without mineral."""
    pos = np.asarray(pos, dtype=np.float64)[..., ::-1]  # highest level first
    neg = np.asarray(neg, dtype=np.float64)[..., ::-1]
    if pos.shape[-1] == 0:
        return np.full(pos.shape[:-1], np.nan)
    tp, fp = np.cumsum(pos, axis=-1), np.cumsum(neg, axis=-1)
    precision = np.divide(tp, tp + fp, out=np.zeros_like(tp), where=pos > 0)
    total = tp[..., -1]
    num = np.sum(pos * precision, axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, num / np.where(total > 0, total, 1), np.nan)
