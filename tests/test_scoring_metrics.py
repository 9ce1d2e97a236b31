"""The metric registry agrees with scikit-learn, with itself under weights, and with torchmetrics."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from minbench.cards import get_card
from minbench.scoring import metrics as M
from minbench.scoring import tables as T
from minbench.scoring.average_precision import MAP_LEVELS


def _random_ranked(rng, n, num_classes, k, skill=0.5):
    target = rng.integers(0, num_classes, n)
    ranked = np.stack([rng.permutation(num_classes)[:k] for _ in range(n)])
    # plant the truth at a random rank for a share of rows, so every k sees hits and misses
    plant = rng.random(n) < skill
    slot = rng.integers(0, k, n)
    for i in np.flatnonzero(plant):
        row = ranked[i]
        if target[i] in row:
            row[row == target[i]] = row[slot[i]]
        row[slot[i]] = target[i]
    return ranked, target


def _scores_from_ranked(ranked, num_classes):
    """A score matrix whose descending order is the ranked list (unranked classes lowest)."""
    n, k = ranked.shape
    scores = np.full((n, num_classes), -1.0)
    for j in range(k):
        valid = ranked[:, j] >= 0
        scores[np.flatnonzero(valid), ranked[valid, j]] = k - j
    return scores


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_classification_agrees_with_sklearn(seed):
    rng = np.random.default_rng(seed)
    card = get_card("fewshot-98")
    num_classes = 30
    ranked, target = _random_ranked(rng, 400, num_classes, 10)
    got = M.classification_metrics(card, ranked, target, num_classes)
    scores = _scores_from_ranked(ranked, num_classes)
    for name, k in [("top1", 1), ("top3", 3), ("top5", 5), ("top10", 10)]:
        want = skm.top_k_accuracy_score(target, scores, k=k, labels=np.arange(num_classes))
        assert got[name] == pytest.approx(want, abs=1e-12), name
    assert got["macro_recall"] == pytest.approx(skm.balanced_accuracy_score(target, ranked[:, 0]), abs=1e-12)
    # the explicit form: recall averaged over the classes that occur in the target
    present = np.unique(target)
    assert got["macro_recall"] == pytest.approx(
        skm.recall_score(target, ranked[:, 0], labels=present, average="macro"), abs=1e-12)


def test_topk_counts_only_submitted_ranks_and_empty_slots():
    card = get_card("fewshot-10")
    ranked = np.array([[0, 1, -1], [2, -1, -1], [5, 4, 3], [-1, -1, -1]])
    target = np.array([1, 3, 3, 0])
    got = M.classification_metrics(card, ranked, target, num_classes=6)
    assert got["top1"] == 0.0
    assert got["top3"] == pytest.approx(2 / 4)
    assert got["top10"] == pytest.approx(2 / 4)  # k beyond the submitted ranks adds nothing
    # class 1 never at rank 1, class 3 once out of two, class 0 none: recall per class all 0
    assert got["macro_recall"] == 0.0


def test_macro_recall_ignores_classes_only_predicted():
    card = get_card("fewshot-10")
    ranked = np.array([[0], [0], [1], [7]])  # class 7 predicted, never true
    target = np.array([0, 0, 1, 1])
    got = M.classification_metrics(card, ranked, target, num_classes=8)
    assert got["macro_recall"] == pytest.approx((1.0 + 0.5) / 2)


def test_zeroshot_card_names_are_used():
    card = get_card("zeroshot")
    got = M.classification_metrics(card, np.array([[1, 0]]), np.array([0]), num_classes=2)
    assert set(got) == {"top1", "top5", "mean_class_recall"}
    assert got["top1"] == 0 and got["top5"] == 1


def _random_masks(rng, n):
    pairs = []
    for i in range(n):
        h, w = rng.integers(3, 12, 2)
        true = rng.random((h, w)) < rng.random()
        pred = rng.random((h, w)) < rng.random()
        if i % 7 == 0:
            true[:] = False
        if i % 7 == 0 and i % 2 == 0:
            pred[:] = False  # both empty
        pairs.append((pred, true))
    return pairs


def _random_maps(rng, n, bits=16):
    """``(pred, true, score)`` triples: masks as ``_random_masks`` and score maps of ``bits``
    bits that lean towards the truth, with ties (a coarse grid of levels) and empty truths."""
    top = (1 << bits) - 1
    dtype = np.uint8 if bits == 8 else np.uint16
    out = []
    for pred, true in _random_masks(rng, n):
        score = np.clip(rng.normal(0.3 + 0.3 * true, 0.25), 0, 1) * top
        if rng.random() < 0.5:
            score = score // 97 * 97  # many pixels share a level
        out.append((pred, true, score.astype(dtype)))
    return out


def test_segmentation_agrees_with_sklearn():
    rng = np.random.default_rng(3)
    pairs = _random_masks(rng, 40)
    got = M.segmentation_metrics(get_card("segmentation"), pairs)
    ious = [skm.jaccard_score(t.ravel(), p.ravel(), zero_division=1.0) for p, t in pairs]
    dices = [skm.f1_score(t.ravel(), p.ravel(), zero_division=1.0) for p, t in pairs]
    accs = [skm.accuracy_score(t.ravel(), p.ravel()) for p, t in pairs]
    assert got["miou"] == pytest.approx(np.mean(ious), abs=1e-12)
    assert got["dice"] == pytest.approx(np.mean(dices), abs=1e-12)
    assert got["pixel_accuracy"] == pytest.approx(np.mean(accs), abs=1e-12)
    np.testing.assert_allclose(got["per_image"]["iou"], ious)


def test_empty_mask_rule():
    empty = np.zeros((4, 4), bool)
    some = empty.copy()
    some[0, 0] = True
    card = get_card("segmentation")
    assert M.segmentation_metrics(card, [(empty, empty)])["miou"] == 1.0
    assert M.segmentation_metrics(card, [(some, empty)])["miou"] == 0.0
    assert M.segmentation_metrics(card, [(empty, some)])["dice"] == 0.0


def test_size_agrees_with_sklearn_on_answered():
    rng = np.random.default_rng(4)
    true = rng.uniform(1, 40, 300)
    pred = true * rng.normal(1, 0.2, 300)
    pred[rng.random(300) < 0.3] = np.nan
    got = M.size_metrics(get_card("size"), pred, true)
    a = np.isfinite(pred)
    assert got["mae"] == pytest.approx(skm.mean_absolute_error(true[a], pred[a]), rel=1e-12)
    assert got["rmse"] == pytest.approx(np.sqrt(skm.mean_squared_error(true[a], pred[a])), rel=1e-12)
    assert got["mape"] == pytest.approx(100 * skm.mean_absolute_percentage_error(true[a], pred[a]), rel=1e-12)
    assert got["r2"] == pytest.approx(skm.r2_score(true[a], pred[a]), rel=1e-10)
    assert got["coverage"] == pytest.approx(a.mean())


def test_size_with_no_answers_is_nan_not_a_crash():
    got = M.size_metrics(get_card("size"), np.array([np.nan, np.nan]), np.array([1.0, 2.0]))
    assert got["coverage"] == 0.0 and np.isnan(got["mae"]) and np.isnan(got["r2"])


@pytest.mark.parametrize("task", ["fewshot-98", "zeroshot", "segmentation", "size"])
def test_weighted_form_equals_point_and_duplicating_rows(task):
    """Weights of 1 give the point value; integer weights equal repeating the rows."""
    rng = np.random.default_rng(5)
    card = get_card(task)
    if card.kind in ("classification", "zeroshot"):
        ranked, target = _random_ranked(rng, 200, 12, 5)
        table = T.classification_table(ranked, target)
    elif card.kind == "segmentation":
        table = T.segmentation_table(_random_maps(rng, 30))
    else:
        true = rng.uniform(1, 40, 200)
        pred = np.where(rng.random(200) < 0.2, np.nan, true + rng.normal(0, 3, 200))
        table = T.size_table(pred, true)
    n = len(next(iter(table.values())))
    counts = rng.integers(0, 4, n)
    repeated = {k: np.repeat(v, counts, axis=0) for k, v in table.items()}
    for spec in card.metrics:
        m = M.impl(spec)
        f = m.features(spec, table)
        ones = m.weighted(spec, f, np.ones((1, n)))[0]
        assert ones == pytest.approx(m.point(spec, table), abs=1e-9), spec.name
        as_weights = m.weighted(spec, f, counts[None, :].astype(float))[0]
        assert as_weights == pytest.approx(m.point(spec, repeated), abs=1e-9), spec.name


# ---- PxAP: the score maps -----------------------------------------------------------------

@pytest.mark.parametrize("bits", [8, 16])
@pytest.mark.parametrize("seed", [0, 1])
def test_pxap_is_sklearn_average_precision_of_the_pooled_pixels(bits, seed):
    items = _random_maps(np.random.default_rng(30 + seed), 25, bits)
    got = M.segmentation_metrics(get_card("segmentation"), items)
    # an 8-bit value v is the 16-bit level 257 v: one scale for every map
    levels = np.concatenate([s.astype(np.float64).ravel() / ((1 << bits) - 1) for _, _, s in items])
    truth = np.concatenate([t.ravel() for _, t, _ in items])
    assert got["pxap"] == pytest.approx(skm.average_precision_score(truth, levels), abs=1e-9)
    per_image = [skm.average_precision_score(t.ravel(), s.ravel()) for _, t, s in items if t.any()]
    assert got["mean_ap"] == pytest.approx(np.mean(per_image), abs=1e-9)
    assert np.isnan(got["per_image"]["ap"]).sum() == sum(not t.any() for _, t, _ in items)


def test_pxap_by_hand():
    """Two images with 8-bit maps, (level, truth) per pixel:
    A: (200, m) (100, m) (100, b);  B: (50, m) (50, b) (0, m) (0, b).  P = 4 mineral pixels.

    Pooled, one threshold per level, highest first (tied pixels pass together):
      >= 200: TP 1 FP 0, precision 1,   recall +1/4
      >= 100: TP 2 FP 1, precision 2/3, recall +1/4
      >=  50: TP 3 FP 2, precision 3/5, recall +1/4
      >=   0: TP 4 FP 3, precision 4/7, recall +1/4
    PxAP = (1 + 2/3 + 3/5 + 4/7) / 4 = 298/420 = 0.7095238...
    Per image: A = (1 + 2/3) / 2 = 5/6; B = (1/2 + 2/4) / 2 = 1/2; mean_ap = (5/6 + 1/2) / 2 = 2/3.
    """
    a_true, a_map = np.array([[1, 1, 0]], bool), np.array([[200, 100, 100]], np.uint8)
    b_true, b_map = np.array([[1, 0, 1, 0]], bool), np.array([[50, 50, 0, 0]], np.uint8)
    got = M.segmentation_metrics(get_card("segmentation"), [(a_true, a_true, a_map), (b_true, b_true, b_map)])
    assert got["pxap"] == pytest.approx(298 / 420, abs=1e-12)
    pooled_true, pooled_map = np.r_[a_true.ravel(), b_true.ravel()], np.r_[a_map.ravel(), b_map.ravel()]
    assert got["pxap"] == pytest.approx(skm.average_precision_score(pooled_true, pooled_map), abs=1e-12)
    assert got["per_image"]["ap"].tolist() == pytest.approx([5 / 6, 1 / 2], abs=1e-12)
    assert got["mean_ap"] == pytest.approx(2 / 3, abs=1e-12)


def test_masks_without_maps_have_no_pxap():
    got = M.segmentation_metrics(get_card("segmentation"), _random_masks(np.random.default_rng(3), 6))
    assert np.isnan(got["pxap"]) and np.isnan(got["mean_ap"]) and "ap" not in got["per_image"]
    one = np.ones((2, 2), bool)
    with pytest.raises(ValueError, match="score maps for 1 of 2 images"):
        T.segmentation_table([(one, one), (one, one, np.ones((2, 2), np.uint8))])


def test_pxap_of_a_per_sample_file_is_exact_for_8_bit_maps(tmp_path):
    """A per-sample file keeps 256 levels: an 8-bit map's own, so its PxAP is the scorer's."""
    from minbench.scoring import samples as S

    table = T.segmentation_table(_random_maps(np.random.default_rng(4), 12, bits=8))
    assert table["px_pos"].shape == (12, MAP_LEVELS)
    ids = [f"s{i}" for i in range(12)]
    kept = S.from_table("segmentation", ids, table, None)
    (tmp_path / "s.npz").write_bytes(S.to_bytes(kept))
    back = S.read(tmp_path / "s.npz")
    assert back.tables[0]["px_pos"].shape == (12, S.FILE_LEVELS)
    for spec in get_card("segmentation").metrics:
        m = M.impl(spec)
        assert m.point(spec, back.tables[0]) == pytest.approx(m.point(spec, table), abs=1e-12), spec.name


# ---- the NumPy scorer against torchmetrics (what the training loops use) ---------------

@pytest.mark.parametrize("seed", [0, 1, 2])
def test_classification_agrees_with_torchmetrics(seed):
    import torch
    from torchmetrics.functional.classification import multiclass_accuracy, multiclass_recall

    rng = np.random.default_rng(10 + seed)
    num_classes = 25
    ranked, target = _random_ranked(rng, 300, num_classes, 10)
    target[target == 3] = 4  # a class that is predicted but never true
    got = M.classification_metrics(get_card("fewshot-98"), ranked, target, num_classes)
    scores = torch.from_numpy(_scores_from_ranked(ranked, num_classes))
    t = torch.from_numpy(target)
    for name, k in [("top1", 1), ("top3", 3), ("top5", 5), ("top10", 10)]:
        want = multiclass_accuracy(scores, t, num_classes=num_classes, top_k=k, average="micro")
        assert got[name] == pytest.approx(float(want), abs=1e-6), name
    per_class = multiclass_recall(torch.from_numpy(ranked[:, 0]), t, num_classes=num_classes, average="none")
    present = torch.bincount(t, minlength=num_classes) > 0
    assert got["macro_recall"] == pytest.approx(float(per_class[present].double().mean()), abs=1e-6)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_size_agrees_with_torchmetrics(seed):
    import torch
    import torchmetrics.functional.regression as R

    rng = np.random.default_rng(20 + seed)
    n = int(rng.integers(2, 400))
    true = rng.uniform(0.5, 40, n)
    pred = true * rng.normal(1, 0.3, n)
    pred[rng.random(n) < 0.25] = np.nan
    pred[:2] = true[:2] * 1.1  # at least two answers
    got = M.size_metrics(get_card("size"), pred, true)
    a = np.isfinite(pred)
    p, t = torch.from_numpy(pred[a]), torch.from_numpy(true[a])
    assert got["mae"] == pytest.approx(float(R.mean_absolute_error(p, t)), rel=1e-12)
    assert got["rmse"] == pytest.approx(float(R.mean_squared_error(p, t, squared=False)), rel=1e-12)
    assert got["mape"] == pytest.approx(100 * float(R.mean_absolute_percentage_error(p, t)), rel=1e-12)
    assert got["r2"] == pytest.approx(float(R.r2_score(p, t)), rel=1e-10)


@pytest.mark.parametrize("pred, true", [
    ([2.0, 3.000001], [2.0, 3.0]),          # residual within 1e-4: a perfect fit
    ([2.5, 3.5, 1.0], [2.0, 2.001, 2.0]),   # spread of the truth within 1e-4, real residual: 0
])
def test_r2_near_constant_rules_follow_torchmetrics(pred, true):
    import torch
    import torchmetrics.functional.regression as R

    got = M.size_metrics(get_card("size"), np.array(pred), np.array(true))["r2"]
    assert got == float(R.r2_score(torch.tensor(pred, dtype=torch.float64), torch.tensor(true, dtype=torch.float64)))


def test_segmentation_agrees_with_torchmetrics():
    import torch
    from torchmetrics.functional.classification import binary_accuracy, binary_f1_score, binary_jaccard_index

    pairs = [(p, t) for p, t in _random_masks(np.random.default_rng(7), 40) if t.any() or p.any()]
    per_image = M.segmentation_metrics(get_card("segmentation"), pairs)["per_image"]
    for i, (p, t) in enumerate(pairs):
        pt, tt = torch.from_numpy(p.ravel().astype(np.int64)), torch.from_numpy(t.ravel().astype(np.int64))
        assert per_image["iou"][i] == pytest.approx(float(binary_jaccard_index(pt, tt)), abs=1e-6)
        assert per_image["dice"][i] == pytest.approx(float(binary_f1_score(pt, tt)), abs=1e-6)
        assert per_image["pixel_accuracy"][i] == pytest.approx(float(binary_accuracy(pt, tt)), abs=1e-6)


def test_per_class_mean_is_balanced_accuracy():
    rng = np.random.default_rng(8)
    label = rng.integers(0, 9, 200)
    pred = np.where(rng.random(200) < 0.6, label, rng.integers(0, 9, 200))
    assert M.per_class_mean(pred == label, label) == pytest.approx(skm.balanced_accuracy_score(label, pred),
                                                                  abs=1e-12)
    assert np.isnan(M.per_class_mean(np.array([], bool), np.array([], int)))


# ---- the training-time forms ------------------------------------------------------------

def test_build_torchmetrics_matches_the_scorer():
    import torch

    from minbench.scoring.training_metrics import build_torchmetrics

    rng = np.random.default_rng(6)
    card = get_card("fewshot-10")
    num_classes = 8  # fewer classes than top10's k: capped, and then exactly 1
    logits = torch.from_numpy(rng.normal(size=(120, num_classes)))
    target = torch.from_numpy(rng.integers(0, num_classes - 1, 120))  # last class never true
    coll = build = build_torchmetrics(card, num_classes)
    assert set(build.keys()) == {"top1", "top3", "top5", "top10", "macro_recall"}
    coll.update(logits[:60], target[:60])
    coll.update(logits[60:], target[60:])
    logged = {k: float(v) for k, v in coll.compute().items()}
    ranked = torch.argsort(logits, dim=1, descending=True).numpy()
    scored = M.classification_metrics(card, ranked, target.numpy(), num_classes)
    for name in logged:
        assert logged[name] == pytest.approx(scored[name], abs=1e-6), name
    assert logged["top10"] == 1.0


def test_build_torchmetrics_keeps_top_k_apart_when_the_first_batch_has_no_near_misses():
    import torch

    from minbench.scoring.training_metrics import build_torchmetrics

    card = get_card("fewshot-10")
    coll = build_torchmetrics(card, 12).clone(prefix="val/")
    logits = torch.eye(12)[:4] * 5            # first batch: all right at rank 1, so top1 == top3
    coll.update(logits, torch.arange(4))
    second = torch.zeros(4, 12)
    second[:, 0], second[:, 1] = 3.0, 2.0     # second batch: truth 1 is always second
    coll.update(second, torch.ones(4, dtype=torch.long))
    logged = {k: float(v) for k, v in coll.compute().items()}
    assert logged["val/top1"] == pytest.approx(4 / 8)
    assert logged["val/top3"] == pytest.approx(1.0)


def test_build_torchmetrics_refuses_other_kinds():
    from minbench.scoring.training_metrics import build_torchmetrics

    with pytest.raises(ValueError, match="classification"):
        build_torchmetrics(get_card("size"), 3)


def test_every_card_metric_kind_is_registered_and_an_unknown_one_is_one_line():
    from dataclasses import replace

    from minbench.cards import METRIC_KINDS
    from minbench.errors import UserError

    assert M.METRICS.names() == list(METRIC_KINDS)
    spec = get_card("fewshot-10").metrics[0]
    with pytest.raises(UserError, match=r"^metric 'top1': unknown metric kind \(did you mean topk_accuracy"):
        M.impl(replace(spec, kind="topk_acuracy"))
