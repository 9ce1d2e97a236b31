"""``minbench run`` for the few-shot classification tasks (``fewshot-10/98/360``).

One seed: train on the card's train split (validation carved from it by the data
module), predict the test split with the best checkpoint, gather the predictions of
every DDP rank (each test row exactly once), write the submission CSV
``sample_id,pred_1..pred_k`` (species names, best first), score it with the scorer,
add the leaderboard entry and draw the plots. Files, under ``seed<N>/``:
``predictions.csv``, ``score.json``, ``checkpoints/{best,last}.ckpt``, ``logs/``
(CSV or wandb), ``plots/{confused_pairs,per_class_accuracy,training_curves}.png``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from minbench.pipelines.context import SeedContext
from minbench.pipelines.kinds import PIPELINES

PREDICTIONS_FILE = "predictions.csv"


@PIPELINES.register("classification")
def run_seed(ctx: SeedContext) -> dict[str, Any] | None:
    import lightning as L

    from minbench.recipes import instantiate
    from minbench.pipelines.lightning_setup import (Throughput, build_datamodule, build_trainer,
                                                    find_callback, last_checkpoint)
    from minbench.trainers.base import BaseTask

    L.seed_everything(ctx.seed, workers=True, verbose=False)
    dm = build_datamodule(ctx)
    dm.setup("fit")
    model = instantiate(ctx.config["model"], "model", BaseTask, task=ctx.card.id,
                        num_classes=dm.num_classes, classes=list(dm.classes))
    has_val = float(getattr(dm, "val_fraction", 0.0) or 0.0) > 0
    trainer = build_trainer(ctx, monitor=ctx.card.monitor if has_val else None, mode=ctx.card.monitor_mode)
    resume_from = last_checkpoint(ctx) if ctx.resume else None
    started = time.perf_counter()
    trainer.fit(model, datamodule=dm, ckpt_path=str(resume_from) if resume_from else None, weights_only=True)
    fit_seconds = time.perf_counter() - started
    throughput = find_callback(trainer, Throughput)
    rates = list(throughput.per_epoch) if throughput else []
    best = trainer.checkpoint_callback.best_model_path if has_val else ""
    outputs = trainer.predict(model, datamodule=dm, ckpt_path=best or None, weights_only=True)
    rows = gather_predictions(outputs or [])
    if not trainer.is_global_zero:
        return None
    path = write_submission(ctx.dir / PREDICTIONS_FILE, rows, dm.test_frame)
    metrics = dict(ctx.score(path).metrics)
    for logger in trainer.loggers:
        logger.log_metrics({f"test/{k}": v for k, v in metrics.items()}, step=trainer.global_step)
        logger.finalize("success")
    draw_plots(ctx, rows, path, trainer)
    stats = {"fit_seconds": fit_seconds, "epochs": trainer.current_epoch,
             "train_images_per_s": sum(rates) / len(rates) if rates else float("nan")}
    return {"metrics": metrics, "stats": stats, "train_images_per_s_per_epoch": rates,
            "checkpoint": best or str(last_checkpoint(ctx) or ""), "predictions": str(path),
            "num_classes": dm.num_classes, "world_size": trainer.world_size}


def gather_predictions(outputs: list[dict[str, Any]]) -> list[tuple[int, str, list[str]]]:
    """``(index, sample_id, ranked species)`` of every rank, each test row once, in
    index order (the distributed sampler may give a row to two ranks)."""
    from minbench.data.datasets import first_occurrences
    from minbench.dist import gather_objects

    local = []
    for out in outputs:
        for idx, sid, species in zip(out["index"].tolist(), out["sample_id"], out["species"]):
            local.append((int(idx), str(sid), list(species)))
    rows = gather_objects(local)
    keep = first_occurrences([row[0] for row in rows])
    return sorted((row for row, k in zip(rows, keep) if k), key=lambda row: row[0])


def write_submission(path: Path, rows: list[tuple[int, str, list[str]]], test_frame) -> Path:
    """The ranked CSV, rows in the test split's order; every test row must be predicted."""
    from minbench.scoring.formats.ranked_csv import write_ranked_csv

    by_id = {sid: species for _, sid, species in rows}
    expected = list(test_frame["sample_id"])
    missing = [s for s in expected if s not in by_id]
    if missing or len(by_id) != len(expected):
        raise RuntimeError(f"predictions cover {len(by_id)} of {len(expected)} test rows "
                           f"(missing e.g. {missing[:3]})")
    return write_ranked_csv(path, expected, [by_id[sid] for sid in expected])


def draw_plots(ctx: SeedContext, rows, submission: Path, trainer) -> None:
    """Confused pairs and per-class accuracy (the truth read through the scorer once the
    ``submission`` is written) and the training curves."""
    from minbench.pipelines.plots import plot_confused_pairs, plot_per_class_accuracy, plot_training_curves
    from minbench.scoring.score import truth_after_submission

    test = truth_after_submission(ctx.card.id, submission, ctx.data_dir).rows
    truth = dict(zip(test["sample_id"], test["species"]))
    true = [truth[sid] for _, sid, _ in rows]
    pred = [species[0] for _, _, species in rows]
    plots = ctx.dir / "plots"
    plot_confused_pairs(true, pred, plots / "confused_pairs.png")
    plot_per_class_accuracy(true, pred, plots / "per_class_accuracy.png")
    log_dir = getattr(trainer.logger, "log_dir", None)
    if log_dir:
        plot_training_curves(Path(log_dir) / "metrics.csv", plots / "training_curves.png")

