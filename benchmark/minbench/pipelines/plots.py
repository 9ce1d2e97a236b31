"""Plots of a classification run (matplotlib PNGs, written atomically): the most-confused
species pairs and the per-class top-1 accuracy, plus the training curves from the CSV log."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Sequence

from minbench.io import atomic_path


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only; never a display
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    _pyplot().close(fig)
    return path


def confused_pairs(true: Sequence[str], pred: Sequence[str], n: int = 20) -> list[tuple[str, str, int]]:
    """The ``n`` most frequent (true, predicted) pairs among top-1 mistakes, most first
    (ties by name, so the list is stable)."""
    counts = Counter((t, p) for t, p in zip(true, pred) if t != p)
    return [(t, p, c) for (t, p), c in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:n]]


def per_class_accuracy(true: Sequence[str], pred: Sequence[str]) -> dict[str, tuple[float, int]]:
    """``{species: (top-1 accuracy, number of test images)}`` (the scorer's per-class recall)."""
    import numpy as np

    from minbench.scoring.metrics import per_class_rates

    true, pred = np.asarray(list(true), dtype=object), np.asarray(list(pred), dtype=object)
    classes, rate, count = per_class_rates(true == pred, true)
    return {str(c): (float(r), int(k)) for c, r, k in zip(classes, rate, count)}


def plot_confused_pairs(true: Sequence[str], pred: Sequence[str], path: Path, n: int = 20) -> Path:
    plt = _pyplot()
    pairs = confused_pairs(true, pred, n)
    fig, ax = plt.subplots(figsize=(8, 0.35 * max(len(pairs), 3) + 1.2))
    if pairs:
        labels = [f"{t}  →  {p}" for t, p, _ in pairs][::-1]
        ax.barh(range(len(pairs)), [c for *_, c in pairs][::-1], color="#c0504d")
        ax.set_yticks(range(len(pairs)), labels, fontsize=8)
        ax.set_xlabel("test images (true → predicted)")
    else:
        ax.text(0.5, 0.5, "no top-1 mistakes", ha="center", va="center", transform=ax.transAxes)
        ax.set_yticks([])
    ax.set_title(f"Most confused species pairs (top {len(pairs)})")
    return _save(fig, path)


def plot_per_class_accuracy(true: Sequence[str], pred: Sequence[str], path: Path, max_bars: int = 60) -> Path:
    """Top-1 accuracy per class, sorted; with many classes the best and worst
    ``max_bars / 2`` are drawn and the title says how many are left out."""
    plt = _pyplot()
    acc = sorted(per_class_accuracy(true, pred).items(), key=lambda kv: (kv[1][0], kv[0]))
    shown = acc if len(acc) <= max_bars else acc[: max_bars // 2] + acc[-max_bars // 2:]
    fig, ax = plt.subplots(figsize=(8, 0.22 * len(shown) + 1.5))
    ax.barh(range(len(shown)), [a for _, (a, _) in shown], color="#4f81bd")
    ax.set_yticks(range(len(shown)), [f"{c} ({k})" for c, (_, k) in shown], fontsize=7)
    ax.set_xlim(0, 1)
    ax.set_xlabel("top-1 accuracy (test images in brackets)")
    mean = sum(a for _, (a, _) in acc) / max(len(acc), 1)
    ax.axvline(mean, color="k", lw=0.8, ls="--")
    left_out = f", {len(acc) - len(shown)} middle classes not drawn" if len(shown) < len(acc) else ""
    ax.set_title(f"Per-class accuracy ({len(acc)} classes, mean {mean:.3f}{left_out})")
    return _save(fig, path)


def plot_training_curves(metrics_csv: Path, path: Path) -> Path | None:
    """Loss and headline metric per epoch from a Lightning CSV log (None if there is none)."""
    import pandas as pd

    if not Path(metrics_csv).is_file():
        return None
    df = pd.read_csv(metrics_csv)
    if "epoch" not in df.columns:
        return None
    cols = [c for c in df.columns if c.endswith("_epoch") or c.startswith("val/")]
    cols = [c for c in cols if "images_per_s" not in c]
    if not cols:
        return None
    per_epoch = df.groupby("epoch")[cols].mean()
    plt = _pyplot()
    loss_cols = [c for c in cols if "loss" in c]
    other = [c for c in cols if c not in loss_cols]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
    for c in loss_cols:
        axes[0].plot(per_epoch.index, per_epoch[c], marker="o", label=c)
    axes[0].set_title("loss")
    for c in other:
        axes[1].plot(per_epoch.index, per_epoch[c], marker="o", label=c)
    axes[1].set_title("metrics")
    for ax in axes:
        ax.set_xlabel("epoch")
        if ax.lines:
            ax.legend(fontsize=7)
    return _save(fig, path)
