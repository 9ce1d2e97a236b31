"""``minbench run --task size``: a size method end to end (the cube estimator, the extent reference).

One seed (the methods are deterministic; seeds only repeat them): measure every photo of
the size split at native resolution (``PhotoSizeTask.predict_step``), write the submission
``sample_id,size_cm`` (empty = abstained), score it with the scorer, add the leaderboard
entry, and write beside it, under ``seed<N>/``:

- ``details.csv``: per photo our size, px/cm, cube and specimen boxes, the reason of an
  abstention, doubts (flags), time per photo, and the authors' rule's answer;
- ``comparison.json``: the card's metrics (and headline intervals) for the method
  (``score.json``'s), what the method records of itself (``describe``: the cube edge, the
  calibration fit ...), for the cube estimator the same for a plain reimplementation of the
  authors' contour rule on the same photos (its answers written as a submission,
  ``authors_predictions.csv``, and scored by the scorer: ``authors.score.json``), and the
  abstention reasons counted;
- ``plots/scatter.png`` (predicted against true size, both methods),
  ``plots/worst_errors.png`` and ``plots/abstentions.png`` (galleries with the detected
  cube and specimen drawn, the true boxes in white when the manifest has them).
"""

from __future__ import annotations

import collections
import json
import math
import time
from pathlib import Path
from typing import Any

from minbench.pipelines.context import SeedContext
from minbench.pipelines.kinds import PIPELINES

PREDICTIONS_FILE = "predictions.csv"
AUTHORS_FILE = "authors_predictions.csv"
DETAILS_FILE = "details.csv"
COMPARISON_FILE = "comparison.json"
GALLERY_SIZE = 12


@PIPELINES.register("size")
def run_seed(ctx: SeedContext) -> dict[str, Any] | None:
    import lightning as L

    from minbench.recipes import instantiate
    from minbench.pipelines.lightning_setup import build_datamodule, build_trainer
    from minbench.dist import gather_objects
    from minbench.trainers.base import BaseTask
    from minbench.trainers.size import dedupe

    L.seed_everything(ctx.seed, workers=True, verbose=False)
    dm = build_datamodule(ctx)
    if getattr(dm, "image_size", None) is not None:
        from minbench.errors import UserError

        raise UserError("data.init_args.image_size: the size estimator measures native-resolution "
                        "photos; set it to null")
    dm.setup("predict")
    model = instantiate(ctx.config["model"], "model", BaseTask, task=ctx.card.id)
    trainer = build_trainer(ctx, monitor=None)
    started = time.perf_counter()
    outputs = trainer.predict(model, datamodule=dm)
    seconds = time.perf_counter() - started
    rows = dedupe(gather_objects([r for batch in (outputs or []) for r in batch]))
    if not trainer.is_global_zero:
        return None
    split = ctx.card.rows(dm.frame, "test", where=str(ctx.data_dir))  # sealed rows: ids, positions
    rows = complete_rows(rows, split, dm)
    path = write_submission(ctx.dir / PREDICTIONS_FILE, rows)
    from minbench.scoring.score import truth_after_submission

    truth = truth_after_submission(ctx.card.id, path, ctx.data_dir).rows
    rows = with_truth(rows, truth)
    write_details(ctx.dir / DETAILS_FILE, rows)
    result = ctx.score(path)
    metrics = dict(result.metrics)
    comparison = compare(model, rows, result, authors=score_authors(ctx, rows))
    from minbench.io import write_json_atomic

    write_json_atomic(ctx.dir / COMPARISON_FILE, comparison)
    if trainer.logger is not None:
        trainer.logger.log_metrics({f"test/{k}": v for k, v in metrics.items() if _finite(v)}, step=0)
        trainer.logger.finalize("success")
    plots = draw_plots(ctx.dir / "plots", rows, ctx.data_dir, truth, label=ctx.recipe_name)
    measured = [r for r in rows if _finite(r.get("ms"))]
    stats = {"images": len(rows), "seconds": seconds,
             "images_per_s": len(measured) / seconds if seconds > 0 else float("nan"),
             "estimator_ms_per_image": (sum(r["ms"] for r in measured) / len(measured)) if measured else float("nan")}
    if comparison["authors"]:
        authors = comparison["authors"]
        stats.update(authors_mae=authors.get("mae"), authors_coverage=authors.get("coverage"))
    _print_comparison(comparison, [m.name for m in ctx.card.metrics], ctx.recipe_name)
    return {"metrics": metrics, "stats": stats, "comparison": comparison, "predictions": str(path),
            "plots": [str(p) for p in plots], "world_size": trainer.world_size}


def complete_rows(rows: list[dict[str, Any]], split, dm) -> list[dict[str, Any]]:
    """One row per photo of the split, in manifest order; photos the data module skipped
    (unreadable) become abstentions with that reason."""
    by_id = {r["sample_id"]: r for r in rows}
    skipped = {}
    try:
        sk = dm.skipped
        skipped = dict(zip(sk["sample_id"], sk["reason"])) if len(sk) else {}
    except Exception:  # noqa: BLE001 - the report is a nicety; the abstention is what matters
        pass
    out = []
    for pos, sid in zip(split.index, split["sample_id"]):
        row = by_id.get(sid)
        if row is None:
            reason = skipped.get(sid, "not served by the data module")
            row = {"sample_id": sid, "index": int(pos), "size_cm": math.nan,
                   "reason": f"unreadable image ({reason})", "flags": ""}
        out.append(row)
    return out


def with_truth(rows: list[dict[str, Any]], truth) -> list[dict[str, Any]]:
    """``rows`` with each photo's true size (and, for a measured photo, its true scale)
    after its id and position: ``truth`` is the scorer's test rows, read once the
    submission is written (``scoring.score.truth_after_submission``)."""
    by_id = truth.set_index("sample_id")
    out = []
    for r in rows:
        t = by_id.loc[r["sample_id"]]
        head = {"sample_id": r["sample_id"], "index": r.get("index"), "true_cm": float(t["size_cm"])}
        if "ms" in r:  # measured by the estimator (a skipped photo has no scale to compare)
            head["true_px_per_cm"] = float(t["px_per_cm"])
        out.append({**head, **r})
    return out


def write_submission(path: Path, rows: list[dict[str, Any]]) -> Path:
    """``sample_id,size_cm``; an abstention is an empty value."""
    from minbench.scoring.formats.size_csv import write_size_csv

    return write_size_csv(path, [r["sample_id"] for r in rows], [r.get("size_cm") for r in rows])


def write_details(path: Path, rows: list[dict[str, Any]]) -> Path:
    import pandas as pd

    from minbench.io import atomic_path

    with atomic_path(path) as tmp:
        pd.DataFrame(rows).to_csv(tmp, index=False, float_format="%.5g")
    return path


def score_authors(ctx: SeedContext, rows: list[dict[str, Any]]):
    """The authors' rule's answers as a submission (``authors_predictions.csv``), scored by
    the scorer (``authors.score.json``); None when the rule did not run."""
    from minbench.scoring.record import score_and_record

    if not any("authors_size_cm" in r for r in rows):
        return None
    answers = [{"sample_id": r["sample_id"], "size_cm": r.get("authors_size_cm", math.nan)} for r in rows]
    path = write_submission(ctx.dir / AUTHORS_FILE, answers)
    return score_and_record(ctx.card.id, path, ctx.data_dir, ctx.dir / "authors.score.json")[0]


def compare(model, rows: list[dict[str, Any]], ours, authors=None) -> dict[str, Any]:
    """Our scores beside the authors' rule's on the same photos (both ``ScoreResult``s of
    the scorer), and why each abstained."""
    reasons = collections.Counter(_reason_key(r.get("reason", "")) for r in rows if not _finite(r.get("size_cm")))
    a_reasons = collections.Counter(r.get("authors_reason") or "" for r in rows
                                    if "authors_size_cm" in r and not _finite(r.get("authors_size_cm")))
    flags = collections.Counter(f for r in rows for f in str(r.get("flags") or "").split(";") if f)
    return {
        "ours": dict(ours.metrics),
        "authors": dict(authors.metrics) if authors is not None else {},
        "ci": {"ours": ours.ci, "authors": authors.ci if authors is not None else {}},
        **model.describe(),
        "abstentions": dict(reasons.most_common()),
        "authors_abstentions": dict(a_reasons.most_common()),
        "flags": dict(flags.most_common()),
        "n": len(rows),
    }


def _reason_key(reason: str) -> str:
    """A reason without its particulars ("... (ValueError: ...)", "(114 px)"), for counting."""
    import re

    previous = None
    while previous != reason:  # innermost brackets first, so nested ones go too
        previous, reason = reason, re.sub(r"\s*\([^()]*\)", "", reason)
    return re.sub(r"\s+", " ", reason).strip()


def _finite(v) -> bool:
    try:
        return math.isfinite(float(v))
    except (TypeError, ValueError):
        return False


def _print_comparison(comp: dict[str, Any], names: list[str], label: str) -> None:
    from rich.console import Console
    from rich.table import Table

    title = f"size: {label}" + (" vs the authors' contour rule (same photos)" if comp["authors"] else "")
    table = Table(title=title)
    table.add_column("method")
    for name in names:
        table.add_column(name, justify="right")
    for label, m in ((label, comp["ours"]), ("authors' contour rule", comp["authors"])):
        if m:
            table.add_row(label, *(f"{m.get(k, float('nan')):.3f}" for k in names))
    Console().print(table)


# --- plots ---------------------------------------------------------------------------------

def draw_plots(folder: Path, rows: list[dict[str, Any]], data_dir: Path, frame,
               label: str = "size-cube") -> list[Path]:
    """Scatter of predicted against true size, and the two galleries; ``frame``: the test
    rows with their truth (read through the scorer after the submission is written);
    ``label``: the method's name in the scatter's legend."""
    folder.mkdir(parents=True, exist_ok=True)
    out = [draw_scatter(folder / "scatter.png", rows, label)]
    answered = [r for r in rows if _finite(r.get("size_cm")) and _finite(r.get("true_cm"))]
    worst = sorted(answered, key=lambda r: -abs(r["size_cm"] - r["true_cm"]))[:GALLERY_SIZE]
    abstained = [r for r in rows if not _finite(r.get("size_cm"))][:GALLERY_SIZE]
    by_id = frame.set_index("sample_id")
    out.append(draw_gallery(folder / "worst_errors.png", worst, data_dir, by_id,
                            title="largest errors (magenta: cube, green: specimen, white: truth)"))
    out.append(draw_gallery(folder / "abstentions.png", abstained, data_dir, by_id,
                            title="abstentions and their reasons (orange: cube-like outlines)"))
    return out


def draw_scatter(path: Path, rows: list[dict[str, Any]], label: str = "size-cube") -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    true = np.array([r.get("true_cm", math.nan) for r in rows], dtype=float)
    ours = np.array([r.get("size_cm", math.nan) for r in rows], dtype=float)
    auth = np.array([r.get("authors_size_cm", math.nan) for r in rows], dtype=float)
    fig, ax = plt.subplots(figsize=(5.5, 5.5), dpi=110)
    ok = np.isfinite(ours) & np.isfinite(true)
    ax.scatter(true[ok], ours[ok], s=10, alpha=0.7, label=f"{label} ({ok.sum()}/{len(rows)})")
    ok_a = np.isfinite(auth) & np.isfinite(true)
    if ok_a.any():
        ax.scatter(true[ok_a], auth[ok_a], s=10, alpha=0.6, marker="x",
                   label=f"authors' contour rule ({ok_a.sum()}/{len(rows)})")
    finite = np.concatenate([true[np.isfinite(true)], ours[ok], auth[ok_a]])
    hi = float(np.nanmax(finite)) * 1.05 if finite.size else 1.0
    ax.plot([0, hi], [0, hi], color="grey", lw=1, ls="--", label="y = x")
    ax.set_xlim(0, hi)
    ax.set_ylim(0, hi)
    ax.set_xlabel("true size (cm)")
    ax.set_ylabel("predicted size (cm)")
    ax.set_title("specimen size: predicted vs true")
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    _save(fig, path)
    return path


def draw_gallery(path: Path, rows: list[dict[str, Any]], data_dir: Path, by_id, *, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from minbench.models.size import SizeEstimate, draw_estimate

    n = max(len(rows), 1)
    cols = min(4, n)
    nrows = math.ceil(n / cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(4 * cols, 3.3 * nrows), dpi=100, squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    if not rows:
        axes[0, 0].text(0.5, 0.5, "none", ha="center", va="center", fontsize=14)
    for ax, r in zip(axes.ravel(), rows):
        sid = r["sample_id"]
        caption = _caption(r)
        try:
            from minbench.data.decode import load_rgb

            meta = by_id.loc[sid]
            img, _ = load_rgb(Path(data_dir) / meta["image_path"])
            est = SizeEstimate(
                size_cm=float(r.get("size_cm", math.nan)), reason=str(r.get("reason", "")),
                cube_polygon=_json(r.get("cube_polygon")), specimen_bbox=_json(r.get("specimen_bbox")),
                label_boxes=_json(r.get("label_boxes")) or [], candidates=_json(r.get("candidates")) or [])
            drawn = draw_estimate(img, est, true_bbox=_box(meta.get("bbox")), true_cube=_box(meta.get("cube_bbox")))
            ax.imshow(drawn)
        except Exception as exc:  # noqa: BLE001 - one unreadable photo must not lose the gallery
            caption += f"\n(image not shown: {type(exc).__name__})"
        ax.set_title(caption, fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    _save(fig, path)
    return path


def _caption(r: dict[str, Any]) -> str:
    sid = r["sample_id"]
    true = r.get("true_cm", math.nan)
    if _finite(r.get("size_cm")):
        text = f"{sid}: {r['size_cm']:.2f} cm (true {true:.2f})"
        if r.get("flags"):
            text += f"\n{str(r['flags'])[:60]}"
        return text
    reason = str(r.get("reason") or "abstained")
    return f"{sid} (true {true:.2f} cm)\n{reason[:70]}"


def _json(text):
    if text is None or (isinstance(text, float) and math.isnan(text)) or text == "":
        return None
    if isinstance(text, (list, tuple)):
        return list(text)
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        return None


def _box(text):
    from minbench.data.manifest import parse_box

    return parse_box(text) if isinstance(text, str) else None


def _save(fig, path: Path) -> None:
    import matplotlib.pyplot as plt

    from minbench.io import atomic_path

    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
