"""``minbench run --task zeroshot``: one seed of a zero-shot recipe, end to end.

1. The data module serves the train rows (species disjoint from the zero-shot set), a
   validation carve of them, and the zero-shot rows as test (sealed: no label, no text).
2. The model embeds every class text (class-level only: names in templates and/or the
   dataset's class descriptions, ``TaskContext.class_texts``) and, to train, the training
   rows' descriptions, once (cached on disk); trains when it is trainable (the offline
   contrastive baseline; CLIP is not), then ranks the zero-shot candidates for every test
   image (chunked scoring, running top-10). No test row's text is read.
3. The ranked CSV is written in the submission format and scored by the scorer (the
   leaderboard entry comes from there too).
4. Generalised zero-shot (GZSL): seen and unseen classes together as candidates; accuracy
   on held-out images of the seen classes (the validation carve) and on the zero-shot
   images, and their harmonic mean, in ``gzsl.json`` and the run's metrics; the zero-shot
   images' species read through the scorer once the submission is written.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from minbench.data.datasets import first_occurrences
from minbench.errors import UserError
from minbench.pipelines.kinds import PIPELINES

SUBMISSION_FILE = "predictions.csv"
GZSL_FILE = "gzsl.json"


def retired_options(config: dict[str, Any]) -> dict[str, str | None]:
    """Model options of older versions that the protocol no longer allows (``validate_run``
    reports them before anything slow): dotted key -> one line saying why and what to use
    instead (None where another key's line covers it).

    ``text_source: descriptions`` named each unseen class by the descriptions of the test
    samples (leave-one-out only removed an image's own one): test-set text in every
    prediction. ``leave_one_out`` existed only for it."""
    from minbench.models import zeroshot_head as zh

    args = (config.get("model") or {}).get("init_args") or {}
    if not isinstance(args, dict):
        return {}
    out: dict[str, str | None] = {}
    source = args.get("text_source")
    if isinstance(source, str) and source in zh.RETIRED_TEXT_SOURCES:
        also = " (and remove leave_one_out)" if "leave_one_out" in args else ""
        out["model.init_args.text_source"] = (
            f"{source!r} is no longer offered: it {zh.RETIRED_TEXT_SOURCES[source]}; unseen classes are "
            f"named by class-level text only: use 'class_text' (the dataset's class descriptions), 'names' "
            f"(prompt templates x names) or 'both'{also}")
        if "leave_one_out" in args:
            out["model.init_args.leave_one_out"] = None
    elif "leave_one_out" in args:
        out["model.init_args.leave_one_out"] = (
            "no longer offered: it served text_source 'descriptions' (test samples' descriptions), which "
            "the protocol forbids; class texts are class-level only, so there is nothing to leave out: remove it")
    return out


def preflight(config: dict[str, Any]) -> None:
    """Checks that need neither data nor models, run before anything slow (dataset
    generation, image caching): the recipe's templates and class-name files, and where a
    CLIP recipe's weights come from, so a missing checkpoint fails at once."""
    from minbench.models import zeroshot_head as zh

    args = (config.get("model") or {}).get("init_args") or {}
    if args.get("templates_file"):
        zh.load_templates(args["templates_file"], key=config.get("task"))
    elif args.get("templates") is not None:
        zh.validate_templates(list(args["templates"]), where="model.init_args.templates")
    if args.get("classnames_file"):
        zh.load_class_names(args["classnames_file"])
    if str((config.get("model") or {}).get("class_path", "")).endswith("ClipZeroShot"):
        from minbench.models.clip import HOW_TO_SUPPLY, hub_reachable

        arch = args.get("arch", "ViT-B-32")
        if args.get("weights"):
            if not Path(args["weights"]).expanduser().is_file():
                raise UserError(f"--weights {args['weights']}: no such checkpoint file; {HOW_TO_SUPPLY}")
        elif args.get("pretrained"):
            if not hub_reachable():
                raise UserError(f"CLIP {arch} ({args['pretrained']}): the model hub is not reachable from "
                                f"here; {HOW_TO_SUPPLY}")
        elif not args.get("allow_random"):
            raise UserError(f"CLIP {arch}: no weights given; {HOW_TO_SUPPLY}")


@PIPELINES.register("zeroshot", retired_options=retired_options, preflight=preflight)
def run_seed(ctx) -> dict[str, Any] | None:
    """Train (if the model trains), predict, write and score the submission for one seed."""
    import lightning as L

    from minbench.recipes import instantiate
    from minbench.pipelines.lightning_setup import build_datamodule, build_trainer, find_callback, last_checkpoint
    from minbench.dist import is_rank_zero
    from minbench.trainers.zeroshot import ClipZeroShot, ZeroShotTask

    L.seed_everything(ctx.seed, workers=True, verbose=False)
    model = instantiate(ctx.config["model"], "model", ZeroShotTask, task=ctx.card.id)
    overrides = {}
    if isinstance(model, ClipZeroShot):
        overrides["image_size"] = model.image_size  # CLIP's own input size; no second resize
    dm = build_datamodule(ctx, **overrides)
    dm.setup("test")
    has_train, has_val = len(dm.positions["train"]) > 0, len(dm.positions["val"]) > 0
    if model.trainable and not has_train:
        raise UserError(f"{ctx.data_dir}: no training rows outside the zero-shot classes (its zero-shot set "
                        "covers every species); run a pretrained model instead, e.g. "
                        "--config clip-vit-b32 --weights PATH")

    # The model reads rows, classes and texts from dm.task_context() in its setup().
    trainer = build_trainer(ctx, monitor=ctx.card.monitor if has_val else None, mode=ctx.card.monitor_mode)
    stats: dict[str, float] = {}
    if model.trainable:
        ckpt = last_checkpoint(ctx) if ctx.resume else None
        trainer.fit(model, datamodule=dm, ckpt_path=str(ckpt) if ckpt else None)
        from minbench.pipelines.lightning_setup import Throughput

        tp = find_callback(trainer, Throughput)
        if tp is not None and tp.per_epoch:
            stats["train_images_per_s"] = round(float(np.mean(tp.per_epoch)), 1)

    t0 = time.perf_counter()
    outputs = trainer.predict(model, datamodule=dm, return_predictions=True) or []
    text_s = float(model.text_embedding_seconds)
    # a model that does not train embeds its texts in the predict call's setup()
    predict_s = time.perf_counter() - t0 - (0.0 if model.trainable else text_s)
    stats = {"text_embedding_s": round(text_s, 2), **stats}
    gzsl_val = _collect_gzsl_seen(trainer, model, dm) if (has_val and model.seen_classes) else None

    from minbench.dist import gather_objects

    outputs = gather_objects(outputs)
    gzsl_val = gather_objects(gzsl_val) if gzsl_val is not None else None
    if not is_rank_zero():
        return None
    test_frame = dm.test_frame
    ranked, test_scores = _ranked_in_order(outputs, test_frame.index.to_numpy(), model)
    stats["predict_images_per_s"] = round(len(test_frame) / max(predict_s, 1e-9), 1)
    path = write_submission(ctx.dir / SUBMISSION_FILE, test_frame["sample_id"].tolist(), ranked,
                            model.unseen.classes)
    metrics = dict(ctx.score(path).metrics)
    result: dict[str, Any] = {"metrics": metrics, "stats": stats,
                              "candidates": len(model.unseen.classes), "seen_classes": len(model.seen_classes),
                              "predictions": str(path)}
    if gzsl_val is not None:
        from minbench.io import write_json_atomic

        from minbench.scoring.score import truth_after_submission

        truth = truth_after_submission(ctx.card.id, path, ctx.data_dir).rows
        species_of = dict(zip(truth["sample_id"], truth["species"]))
        gz = gzsl_metrics(model, [species_of.get(s, "") for s in test_frame["sample_id"]], test_scores, gzsl_val)
        write_json_atomic(ctx.dir / GZSL_FILE, gz)
        result["metrics"].update({f"gzsl_{k}": gz[k] for k in ("seen", "unseen", "h", "ausuc")})
        result["gzsl"] = gz
    return result


def _collect_gzsl_seen(trainer, model, dm) -> list[dict[str, Any]]:
    """Top-1 seen and unseen scores of the held-out seen images: one validation pass of the
    final model (each pass leaves them in ``model.gzsl_rows``)."""
    trainer.validate(model, datamodule=dm, verbose=False)
    return list(model.gzsl_rows)


def _ranked_in_order(outputs, row_positions: np.ndarray, model):
    """Per test row (manifest position order of ``row_positions``): ranked candidate
    indices (N x k) and the GZSL fields (best unseen/seen score and class)."""
    if not outputs:
        raise RuntimeError("zero-shot prediction returned nothing")
    cat = {key: np.concatenate([o[key].numpy() for o in outputs]) for key in outputs[0]}
    cat = {k: v[first_occurrences(cat["index"])] for k, v in cat.items()}
    where = {int(i): j for j, i in enumerate(cat["index"])}
    missing = [p for p in row_positions if int(p) not in where]
    if missing:
        raise RuntimeError(f"{len(missing)} test rows got no prediction (e.g. manifest row {missing[0]})")
    order = np.array([where[int(p)] for p in row_positions], np.int64)
    return cat["indices"][order], {k: v[order] for k, v in cat.items()}


def write_submission(path: Path, sample_ids: list[str], ranked: np.ndarray, classes) -> Path:
    """The ranked CSV ``sample_id,pred_1..pred_k`` (species names, best first), atomically."""
    from minbench.scoring.formats.ranked_csv import write_ranked_csv

    names = np.asarray(list(classes), dtype=object)
    return write_ranked_csv(path, sample_ids, names[ranked].tolist())


def gzsl_metrics(model, test_species, test_scores, seen_rows) -> dict[str, Any]:
    """Generalised zero-shot: every seen and unseen class is a candidate; the figures are
    the scorer's (``minbench.scoring.gzsl``) on the held-out images of seen classes (the
    validation carve) and on the zero-shot images. ``test_species``: the true species of
    each test row in ``test_scores``' order, read through the scorer after the submission
    is written (``truth_after_submission``)."""
    from minbench.scoring.gzsl import gzsl_scores

    cat = {key: np.concatenate([np.asarray(o[key]) for o in seen_rows]) for key in seen_rows[0]}
    cat = {k: v[first_occurrences(cat["index"])] for k, v in cat.items()}
    cand_of = {c: i for i, c in enumerate(model.unseen.classes)}
    truth = np.array([cand_of.get(s, -1) for s in test_species], np.int64)
    out = gzsl_scores(seen_label=cat["label"], seen_best_seen=cat["seen_value"],
                      seen_best_seen_index=cat["seen_index"], seen_best_unseen=cat["unseen_value"],
                      unseen_label=truth, unseen_best_unseen=test_scores["values"][:, 0],
                      unseen_best_unseen_index=test_scores["indices"][:, 0],
                      unseen_best_seen=test_scores["seen_value"])
    return {
        **out,
        "n_seen_classes": len(model.seen_classes), "n_unseen_classes": len(model.unseen.classes),
        "protocol": "candidates = seen + unseen classes, each named by its class-level text (the model's "
                    "text_source); seen images = validation carve of the training classes; mean per-class top-1; "
                    "seen/unseen/h uncalibrated; ausuc = area under the seen-unseen accuracy curve of "
                    "calibrated stacking over every gamma; h_best_gamma_oracle picks gamma on these "
                    "very images (an upper bound, not a result)",
    }
