"""Floor rows: what chance and trivial predictors score on a board's dataset.

Computed from the dataset (the manifest), never typed in, and scored with the scorer's
own metric functions; shown apart from the ranked entries.

- ranked classification: ``chance`` (a uniformly random ranking of the K candidate
  classes: top-k = min(k, K)/K, macro recall = 1/K, K counted from the data) and
  ``train prior`` (every row ranks the training split's most frequent classes, most
  frequent first; ties by name), scored like a submission. Zero-shot tasks have no
  training rows for their classes: chance only.
- segmentation: ``all mineral`` and ``all background`` masks, scored against the true masks,
  each with a constant score map (so ``pxap`` is the share of mineral pixels: the chance
  level of average precision, and ``mean_ap`` its mean per image).
- size: ``median size`` predicts, for every test row, the median ``size_cm`` of the
  manifest rows outside the size test split (no test label is used); absent when the
  manifest has no such rows.
"""

from __future__ import annotations

import numpy as np

from minbench.scoring import metrics as M, tables as T


def _row(name: str, description: str, values: dict) -> dict:
    return {"name": name, "description": description,
            "metrics": {k: (float(v) if v is not None and np.isfinite(v) else None) for k, v in values.items()}}


def compute_floors(data) -> list[dict]:
    """Floor rows for ``data`` (a ``score.TaskData``): ``{name, description, metrics}``."""
    card, df, rows = data.card, data.manifest, data.rows
    family = M.CARD_FAMILY[card.kind]
    if family == "classification":
        return _classification(card, df, rows)
    if family == "segmentation":
        return _segmentation(card, data.folder, rows)
    return _size(card, df, rows)


def train_prior(card, df) -> list[str]:
    """The train prior's ranking: the training split's most frequent classes, most frequent
    first (ties by name), at most ``card.max_ranks``; empty without training rows."""
    counts = card.rows(df, "train")["species"].value_counts()
    return sorted(counts.index, key=lambda c: (-counts[c], c))[: int(card.max_ranks or 10)]


def median_size(card, df) -> tuple[float, int] | None:
    """The median ``size_cm`` of the manifest rows outside the size test split (the card's
    calibration rows, ``card.calibration_positions``) and how many rows it is over (no test
    label used); None when there are none."""
    others = df["size_cm"].to_numpy(dtype=np.float64)[card.calibration_positions(df)]
    others = others[np.isfinite(others)]
    return (float(np.median(others)), len(others)) if len(others) else None


def _classification(card, df, rows) -> list[dict]:
    classes = card.classes(df)
    n_classes = len(classes)
    chance = {}
    for spec in card.metrics:
        chance[spec.name] = min(spec.k, n_classes) / n_classes if spec.kind == "topk_accuracy" else 1.0 / n_classes
    out = [_row("chance", f"a uniformly random ranking of the {n_classes} candidate classes", chance)]
    if card.kind == "classification":  # a zero-shot task's training classes are never candidates
        order = train_prior(card, df)
        if order:
            ranked = np.tile(classes.get_indexer(order), (len(rows), 1))
            table = T.classification_table(ranked, classes.get_indexer(rows["species"]))
            out.append(_row("train prior", f"every row ranks the {len(order)} most frequent training classes",
                            M.evaluate(card, table)))
    return out


def _segmentation(card, folder, rows) -> list[dict]:
    from minbench.scoring.formats.mask_pngs import load_true_mask

    truths = [load_true_mask(folder, r) for r in rows.itertuples(index=False)]
    out = []
    for name, fill in (("all mineral", True), ("all background", False)):
        table = T.segmentation_table((np.full(t.shape, fill), t, np.full(t.shape, 255 * fill, np.uint8))
                                     for t in truths)
        out.append(_row(name, f"every pixel predicted {'mineral' if fill else 'background'} (a constant "
                        "score map)", M.evaluate(card, table)))
    return out


def _size(card, df, rows) -> list[dict]:
    found = median_size(card, df)
    if found is None:
        return []
    median, n_others = found
    table = T.size_table(np.full(len(rows), median), rows["size_cm"].to_numpy())
    return [_row("median size", f"{median:.3g} cm for every row: the median of the {n_others} manifest rows "
                 "outside the size test split (no test label used)", M.evaluate(card, table))]
