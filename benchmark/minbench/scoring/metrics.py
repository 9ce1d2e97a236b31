"""The registry from a task card's metric ``kind`` to its computation (``METRICS``).

Every metric is computed twice over, from the same per-sample table, in NumPy (the
scorer imports no deep-learning framework; tests check the values against torchmetrics
and scikit-learn):

- ``point``: the reported value;
- ``weighted``: the same statistic under sample weights (a ``B x U`` matrix of counts),
  which is how ``bootstrap.py`` evaluates a thousand resamples in one vectorised pass.
  With all weights 1 it equals ``point`` (tested).

The per-sample tables they read are ``scoring/tables.py``'s.

Definitions users see in the leaderboard:

- ``topk_accuracy``: the true species is among the first k submitted ranks. When a row
  submits fewer than k ranks only the submitted ones count (nothing is filled in).
- ``macro_recall``: mean, over the classes present in the target, of per-class top-1
  recall (scikit-learn's ``balanced_accuracy_score``). Classes only predicted, never true,
  do not enter the mean (torchmetrics' ``average='macro'`` would count them as 0).
  ``per_class_mean`` is the same statistic for any per-sample hit vector.
- ``mean_iou`` / ``dice`` / ``pixel_accuracy``: per image first, then the mean over
  images. Empty-mask rule: truth and prediction both empty -> IoU = Dice = 1; truth empty
  and prediction not (or the reverse) -> 0.
- ``pxap``: pixel average precision of the score maps (Choe et al., CVPR 2020): every pixel
  of every test image pooled, scored by its map level, AP over all thresholds (scikit-learn's
  ``average_precision_score`` on the pooled pixels). A map's levels are 16-bit (an 8-bit value
  v is level 257 v); the pixels of one level tie, so a histogram per level is exact, in bounded
  memory. ``mean_ap``: the same AP per image, averaged over the images with mineral (AP is
  undefined without a positive pixel). Both are NaN without maps (a binary-only submission).
- ``mae`` / ``rmse`` (cm), ``mape`` (%), ``r2``: over the answered samples only;
  ``coverage`` = answered / all. R² needs two answered samples with different sizes,
  else NaN. Formulas as torchmetrics' (R² = 1 - RSS / (Σy² - (Σy)²/n), 1 when RSS ≤ 1e-4,
  0 when that spread ≤ 1e-4; MAPE divides by max(|y|, 1.17e-6)).

The training-time torchmetrics forms (logged by the trainers) are in
``scoring/training_metrics.py``, which the scorer never imports.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Iterable

import numpy as np

from minbench.registry import Registry
from minbench.scoring.bootstrap import CHUNK_CELLS
from minbench.scoring.average_precision import average_precision
from minbench.scoring.tables import Table, classification_table, segmentation_table, size_table

if TYPE_CHECKING:
    from minbench.cards import MetricSpec, TaskCard



@dataclass(frozen=True)
class MetricImpl:
    """How one metric kind is computed.

    ``family``: which per-sample table it reads. ``point(spec, table)``: the value.
    ``features(spec, table)``: the columns ``weighted`` needs (the bootstrap compresses
    samples with equal features). ``weighted(spec, features, w)``: the value for each row
    of the weight matrix ``w`` (B x U), shape (B,).
    """

    family: str
    point: Callable[["MetricSpec", Table], float]
    features: Callable[["MetricSpec", Table], Table]
    weighted: Callable[["MetricSpec", Table, np.ndarray], np.ndarray]


#: a card metric's ``kind`` -> its ``MetricImpl``; every kind ``cards.METRIC_KINDS`` admits
METRICS: Registry[MetricImpl] = Registry("metric kind")


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)


def _wmean(w: np.ndarray, v: np.ndarray) -> np.ndarray:
    return _ratio(w @ v.astype(np.float64), w.sum(axis=1))


# ---- classification -------------------------------------------------------------------

def _topk_point(spec, t):
    return float(np.mean(t["pos"] < spec.k)) if len(t["pos"]) else float("nan")


def _topk_features(spec, t):
    return {"hit": (t["pos"] < spec.k).astype(np.float64)}


def _topk_weighted(spec, f, w):
    return _wmean(w, f["hit"])


METRICS.add("topk_accuracy", MetricImpl("classification", _topk_point, _topk_features, _topk_weighted))


def per_class_rates(hit: np.ndarray, label: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per class present in ``label`` (sorted): the class, its mean ``hit`` (its top-1
    recall when ``hit`` is "top-1 is right") and its number of samples."""
    label = np.asarray(label)
    classes, inverse = np.unique(label, return_inverse=True)
    inverse = inverse.reshape(-1)
    support = np.bincount(inverse, minlength=len(classes))
    hits = np.bincount(inverse, weights=np.asarray(hit, dtype=np.float64), minlength=len(classes))  # exact counts
    return classes, hits / support, support


def per_class_mean(hit: np.ndarray, label: np.ndarray) -> float:
    """Mean over the classes present in ``label`` of each class's mean ``hit`` (macro
    recall when ``hit`` is "top-1 is right"; NaN without samples)."""
    if not len(label):
        return float("nan")
    return float(per_class_rates(hit, label)[1].mean())


def _macro_recall_point(spec, t):
    return per_class_mean(t["pos"] == 0, t["target"])


def _macro_recall_features(spec, t):
    return {"target": t["target"].astype(np.float64), "hit": (t["pos"] == 0).astype(np.float64)}


def _macro_recall_weighted(spec, f, w):
    classes, inv = np.unique(f["target"], return_inverse=True)
    order = np.argsort(inv, kind="stable")
    starts = np.flatnonzero(np.r_[True, np.diff(inv[order]) != 0])
    w_sorted = w[:, order]
    totals = np.add.reduceat(w_sorted, starts, axis=1)
    hits = np.add.reduceat(w_sorted * f["hit"][order], starts, axis=1)
    recall = _ratio(hits, totals)  # a class absent from a resample is NaN: left out of the mean
    with np.errstate(invalid="ignore"):
        counted = np.isfinite(recall).sum(axis=1)
        return _ratio(np.nansum(recall, axis=1), counted)


METRICS.add("macro_recall", MetricImpl("classification", _macro_recall_point, _macro_recall_features,
                                       _macro_recall_weighted))


# ---- segmentation ---------------------------------------------------------------------

def per_image_scores(t: Table) -> Table:
    """Per-image IoU, Dice and pixel accuracy from the pixel counts (empty-mask rule above);
    with score maps also the per-image AP (``ap``, NaN for an image without mineral)."""
    tp, fp, fn, tn = (t[k].astype(np.float64) for k in ("tp", "fp", "fn", "tn"))
    union = tp + fp + fn
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(union > 0, tp / np.where(union > 0, union, 1), 1.0)
        dice = np.where(union > 0, 2 * tp / np.where(union > 0, 2 * tp + fp + fn, 1), 1.0)
        acc = (tp + tn) / np.maximum(tp + fp + fn + tn, 1)
    out = {"iou": iou, "dice": dice, "pixel_accuracy": acc}
    if "ap" in t:
        out["ap"] = np.asarray(t["ap"], dtype=np.float64)
    return out


def _seg(name):
    def point(spec, t):
        values = per_image_scores(t)[name]
        return float(values.mean()) if len(values) else float("nan")

    def features(spec, t):
        return {"v": per_image_scores(t)[name]}

    def weighted(spec, f, w):
        return _wmean(w, f["v"])

    return MetricImpl("segmentation", point, features, weighted)


METRICS.add("mean_iou", _seg("iou"))
METRICS.add("dice", _seg("dice"))
METRICS.add("pixel_accuracy", _seg("pixel_accuracy"))


# ---- segmentation: score maps (PxAP; the exact AP is scoring/average_precision.py) -----

def has_maps(t: Table) -> bool:
    """Whether a segmentation table holds score maps."""
    return "px_pos" in t


def _pxap_point(spec, t):
    if not has_maps(t):
        return float("nan")
    return float(average_precision(t["px_pos"].sum(axis=0), t["px_neg"].sum(axis=0)))


def _pxap_features(spec, t):
    """The per-image histograms on the levels where some image has mineral. Exact: a
    background pixel at another level counts as if at the nearest such level below it (the
    same thresholds pass it), and one below all of them at no threshold: it is dropped."""
    starts = np.flatnonzero(t["px_pos"].sum(axis=0) > 0) if has_maps(t) else []
    if not len(starts):  # no maps, or no mineral: PxAP is undefined (NaN)
        return {"pos": np.zeros((len(t["tp"]), 0)), "neg": np.zeros((len(t["tp"]), 0))}
    return {k: np.add.reduceat(t[f"px_{k}"], starts, axis=1).astype(np.float64) for k in ("pos", "neg")}


def _pxap_weighted(spec, f, w):
    pos, neg = f["pos"], f["neg"]
    step = max(1, CHUNK_CELLS // max(pos.shape[1], 1))  # resamples per step: memory bound
    out = np.empty(len(w))
    for i in range(0, len(w), step):
        out[i:i + step] = average_precision(w[i:i + step] @ pos, w[i:i + step] @ neg)
    return out


def _mean_ap_point(spec, t):
    ap = t.get("ap", np.full(len(t["tp"]), np.nan))
    ap = ap[np.isfinite(ap)]
    return float(ap.mean()) if len(ap) else float("nan")


def _mean_ap_features(spec, t):
    ap = t.get("ap", np.full(len(t["tp"]), np.nan))
    defined = np.isfinite(ap)
    return {"ap": np.where(defined, ap, 0.0), "has": defined.astype(np.float64)}


def _mean_ap_weighted(spec, f, w):
    return _ratio(w @ f["ap"], w @ f["has"])


METRICS.add("pxap", MetricImpl("segmentation", _pxap_point, _pxap_features, _pxap_weighted))
METRICS.add("mean_ap", MetricImpl("segmentation", _mean_ap_point, _mean_ap_features, _mean_ap_weighted))


# ---- size -----------------------------------------------------------------------------

def _answered(t):
    return np.isfinite(t["pred"])


MAPE_EPSILON = 1.17e-06  # torchmetrics' floor of |y| in MAPE
R2_ATOL = 1e-4           # torchmetrics' tolerance for a zero residual or spread in R²


def _size_point(fn_name):
    def point(spec, t):
        a = _answered(t)
        if not a.any():
            return float("nan")
        pred = t["pred"][a].astype(np.float64)
        true = t["true"][a].astype(np.float64)
        n = len(true)
        diff = pred - true
        if fn_name == "mae":
            return float(np.sum(np.abs(diff)) / n)
        if fn_name == "rmse":
            return float(np.sqrt(np.sum(diff * diff) / n))
        if fn_name == "mape":
            return float(np.sum(np.abs(diff) / np.maximum(np.abs(true), MAPE_EPSILON)) / n) * 100.0
        # r2: undefined for fewer than two answers or a constant truth
        if n < 2 or np.ptp(true) == 0:
            return float("nan")
        sum_obs = np.sum(true)
        tss = np.sum(true * true) - sum_obs * (sum_obs / n)
        rss = np.sum(diff * diff)
        # torchmetrics' rule for near-constant sums: a residual within 1e-4 is a perfect
        # fit (1), a spread of the truth within 1e-4 with a real residual scores 0
        if abs(rss) <= R2_ATOL:
            return 1.0
        if abs(tss) <= R2_ATOL:
            return 0.0
        return float(1.0 - rss / tss)

    return point


def _size_features(spec, t):
    a = _answered(t)
    err = np.where(a, t["pred"] - t["true"], 0.0)
    y = np.where(a, t["true"], 0.0)
    return {"a": a.astype(np.float64), "abs": np.abs(err), "se": err ** 2,
            "ape": _ratio(np.abs(err), np.where(a, t["true"], 1.0)), "y": y}


def _mae_w(spec, f, w):
    return _ratio(w @ f["abs"], w @ f["a"])


def _rmse_w(spec, f, w):
    return np.sqrt(_ratio(w @ f["se"], w @ f["a"]))


def _mape_w(spec, f, w):
    return 100.0 * _ratio(w @ f["ape"], w @ f["a"])


def _r2_w(spec, f, w):
    n = w @ f["a"]
    sy = w @ f["y"]
    syy = w @ (f["y"] ** 2)
    with np.errstate(invalid="ignore", divide="ignore"):
        ss_tot = syy - _ratio(sy * sy, n)
        ss_res = w @ f["se"]
        # relative tolerance: a constant truth leaves rounding noise in ss_tot
        ok = (n >= 2) & (ss_tot > 1e-12 * np.maximum(syy, 1e-300))
        return np.where(ok, 1.0 - ss_res / np.where(ok, ss_tot, 1.0), np.nan)


def _coverage_point(spec, t):
    return float(_answered(t).mean()) if len(t["pred"]) else float("nan")


def _coverage_features(spec, t):
    return {"a": _answered(t).astype(np.float64)}


def _coverage_w(spec, f, w):
    return _wmean(w, f["a"])


def _size_impl(name, weighted):
    return MetricImpl("size", _size_point(name), _size_features, weighted)


METRICS.add("mae", _size_impl("mae", _mae_w))
METRICS.add("rmse", _size_impl("rmse", _rmse_w))
METRICS.add("mape", _size_impl("mape", _mape_w))
METRICS.add("r2", _size_impl("r2", _r2_w))
METRICS.add("coverage", MetricImpl("size", _coverage_point, _coverage_features, _coverage_w))

CARD_FAMILY = {"classification": "classification", "zeroshot": "classification",
               "segmentation": "segmentation", "size": "size"}


def impl(spec: "MetricSpec") -> MetricImpl:
    """The implementation of a card's metric (every card metric kind is registered)."""
    return METRICS.get(spec.kind, what=f"metric {spec.name!r}")


def evaluate(card: "TaskCard", table: Table) -> dict[str, float]:
    """All of the card's metrics on a per-sample table, keyed by the card's names."""
    family = CARD_FAMILY[card.kind]
    out = {}
    for spec in card.metrics:
        m = impl(spec)
        if m.family != family:
            raise ValueError(f"{card.path}: metric {spec.name!r} ({spec.kind}) does not apply to a {card.kind} task")
        out[spec.name] = m.point(spec, table)
    return out


# ---- the API trainers and pipelines call ----------------------------------------------

def classification_metrics(card: "TaskCard", ranked: np.ndarray, target: np.ndarray,
                           num_classes: int) -> dict[str, float]:
    """The card's classification metrics for ranked class indices.

    ``ranked``: N x K int class indices, best first, -1 = no prediction in that slot;
    ``target``: N true class indices in ``[0, num_classes)``. Top-k counts only the
    submitted ranks when k > K; macro recall averages over classes present in ``target``.
    """
    target = np.asarray(target, dtype=np.int64)
    if len(target) and (target.min() < 0 or target.max() >= num_classes):
        raise ValueError(f"target holds class indices outside [0, {num_classes})")
    return evaluate(card, classification_table(ranked, target))


def segmentation_metrics(card: "TaskCard", pairs: Iterable[tuple]) -> dict:
    """The card's segmentation metrics over ``(pred_mask, true_mask)`` bool HxW pairs (or
    ``(pred_mask, true_mask, score_map)`` triples: ``pxap`` and ``mean_ap`` need the maps).

    Mask metrics are computed per image, then averaged over images (empty-mask rule: both
    empty -> 1, one empty -> 0). The result also holds ``"per_image"``: a dict of arrays
    ``iou``, ``dice``, ``pixel_accuracy`` (and ``ap`` with maps) in the order of ``pairs``.
    """
    table = segmentation_table(pairs)
    out: dict = evaluate(card, table)
    out["per_image"] = per_image_scores(table)
    return out


def size_metrics(card: "TaskCard", pred_cm: np.ndarray, true_cm: np.ndarray) -> dict[str, float]:
    """The card's size metrics: MAE, RMSE (cm), MAPE (%), R² on answered; coverage on all.

    ``pred_cm``: predicted sizes, NaN where the method abstained.
    """
    return evaluate(card, size_table(pred_cm, true_cm))
