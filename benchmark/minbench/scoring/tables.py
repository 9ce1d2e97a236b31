"""Per-sample tables: what the scorer keeps of each test sample to compute every metric.

Dicts of 1-D numpy arrays, one value per test sample, built from a submission and the
truth (``scoring/formats/``) or in memory (trainers, pipelines); ``scoring/metrics.py``
turns them into the card's metrics and ``scoring/bootstrap.py`` into intervals:

- classification (``classification``/``zeroshot`` cards): ``pos`` = 0-based position of
  the true species in the submitted ranks, ``NO_HIT`` when absent; ``target`` = class index.
- segmentation: ``tp``, ``fp``, ``fn``, ``tn`` pixel counts of the mineral class per image;
  with score maps also ``px_pos``, ``px_neg`` (N x L uint32: mineral and background pixels at
  each map level, levels ascending; L = 65,536 from the scorer) and ``ap`` (per-image AP).
- size: ``pred`` (cm, NaN = abstained) and ``true`` (cm).
"""

from __future__ import annotations

from typing import Iterable

import numpy as np

from minbench.scoring.average_precision import average_precision, map_histograms

NO_HIT = np.int64(1 << 40)  # `pos` of a sample whose true species was not submitted

Table = dict[str, np.ndarray]


def hit_positions(ranked: np.ndarray, target: np.ndarray) -> np.ndarray:
    """0-based position of each target in its row of ``ranked`` (``NO_HIT`` if absent)."""
    ranked = np.asarray(ranked, dtype=np.int64)
    target = np.asarray(target, dtype=np.int64)
    if ranked.ndim != 2 or ranked.shape[0] != target.shape[0]:
        raise ValueError(f"ranked must be N x K and target N; got {ranked.shape} and {target.shape}")
    eq = ranked == target[:, None]
    found = eq.any(axis=1)
    return np.where(found, eq.argmax(axis=1), NO_HIT).astype(np.int64)


def classification_table(ranked: np.ndarray, target: np.ndarray) -> Table:
    """Per-sample table of a classification submission (see the module docstring)."""
    return {"pos": hit_positions(ranked, target), "target": np.asarray(target, dtype=np.int64)}


def mask_counts(pred: np.ndarray, true: np.ndarray) -> tuple[int, int, int, int]:
    """``(tp, fp, fn, tn)`` pixel counts of the mineral class.

    Counted with numpy: torchmetrics' stat scores cost ~0.2 s per 1024x768 mask on a CPU
    (100x slower), and the ratios built from these counts are checked against scikit-learn.
    """
    pred = np.asarray(pred, dtype=bool)
    true = np.asarray(true, dtype=bool)
    if pred.shape != true.shape:
        raise ValueError(f"mask shapes differ: predicted {pred.shape}, true {true.shape}")
    tp = int(np.count_nonzero(pred & true))
    n_pred, n_true = int(np.count_nonzero(pred)), int(np.count_nonzero(true))
    fp, fn = n_pred - tp, n_true - tp
    return tp, fp, fn, int(pred.size) - tp - fp - fn


def segmentation_row(pred: np.ndarray, true: np.ndarray, score: np.ndarray | None = None) -> dict:
    """One image's entries of the segmentation table: its pixel counts, and with its score
    map (uint8 or uint16 HxW) the level histograms and its AP."""
    row: dict = dict(zip(("tp", "fp", "fn", "tn"), mask_counts(pred, true)))
    if score is not None:
        row["px_pos"], row["px_neg"] = map_histograms(score, true)
        row["ap"] = float(average_precision(row["px_pos"], row["px_neg"]))
    return row


def stack_segmentation_rows(rows: Iterable[dict]) -> Table:
    """The per-image table from ``segmentation_row`` results, in order; score maps for
    every image or none."""
    rows = list(rows)
    arr = np.asarray([[r[k] for k in ("tp", "fp", "fn", "tn")] for r in rows], dtype=np.int64).reshape(-1, 4)
    table = {"tp": arr[:, 0], "fp": arr[:, 1], "fn": arr[:, 2], "tn": arr[:, 3]}
    with_map = sum("px_pos" in r for r in rows)
    if with_map and with_map != len(rows):
        raise ValueError(f"score maps for {with_map} of {len(rows)} images; give every image a map or none")
    if rows and with_map:
        for k in ("px_pos", "px_neg"):
            table[k] = np.stack([r[k] for r in rows])
        table["ap"] = np.asarray([r["ap"] for r in rows], dtype=np.float64)
    return table


def segmentation_table(items: Iterable[tuple]) -> Table:
    """The per-image table from ``(pred_mask, true_mask)`` bool HxW pairs, or
    ``(pred_mask, true_mask, score_map)`` triples (``segmentation_row``)."""
    return stack_segmentation_rows(segmentation_row(*item) for item in items)


def size_table(pred_cm: np.ndarray, true_cm: np.ndarray) -> Table:
    """Per-sample table of a size submission (``pred_cm`` NaN = abstained)."""
    pred = np.asarray(pred_cm, dtype=np.float64)
    true = np.asarray(true_cm, dtype=np.float64)
    if pred.shape != true.shape or pred.ndim != 1:
        raise ValueError(f"pred_cm and true_cm must be 1-D of one length; got {pred.shape} and {true.shape}")
    return {"pred": pred, "true": true}
