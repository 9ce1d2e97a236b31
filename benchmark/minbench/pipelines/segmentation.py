"""``minbench run --task segmentation``: zero-shot masks from a classifier's CAM, scored.

One seed:

1. the classifier: ``model.init_args.classifier`` (``--classifier CKPT``) when given;
   else a finished few-shot run on the same dataset under ``./runs`` (the default
   recipe first); else one this pipeline trained before (cached under
   ``$MINBENCH_HOME/classifiers/``); else it trains the few-shot default recipe on
   ``fewshot-10`` now (a few epochs at 64 px on a CPU) and caches it
   (``pipelines.segmentation_classifier``);
2. the validation part (the card's ``split.validation``, whose masks are public): its CAMs
   (refined by ``--refine``, upsampled), the ``val`` level chosen on its masks when the
   rule is ``val``, and its metrics by the scorer's functions: ``validation.json`` (what a
   recipe is chosen by; never the test figures);
3. CAMs of the test images (``SegmentationTask``; the data module resizes each
   photo whole to the classifier's input size), refined, upsampled to the photo's resolution and
   thresholded: ``predictions/<sample_id>.png`` (the submission), with the upsampled CAM as
   its score map (``predictions/maps/<sample_id>.png``, 16-bit: PxAP scores it over every
   threshold), and ``cams/`` (8-bit CAMs at the classifier's resolution);
4. the scorer scores the folder and the leaderboard entry is added (``ctx.score``);
5. reference baselines without any classifier (``centre``, ``colour``, ``border``:
   ``minbench.models.saliency_baselines``) are written and scored the same way, and the
   summary says plainly when the CAM does not beat one of them (by the paired interval)
   (``pipelines.segmentation_baselines``);
6. ``plots/gallery.png``: image, ground truth, CAM heatmap and mask of the best and worst
   images by IoU.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from minbench.pipelines.context import SeedContext
from minbench.pipelines.kinds import PIPELINES

PREDICTIONS_DIR = "predictions"
CAMS_DIR = "cams"
GALLERY_FILE = "plots/gallery.png"
VALIDATION_FILE = "validation.json"
FALLBACK_IMAGE_SIZE = 224


# --------------------------------------------------------------------------- one seed
@PIPELINES.register("segmentation")
def run_seed(ctx: SeedContext) -> dict[str, Any] | None:
    import lightning as L

    from minbench.data.manifest import read_info
    from minbench.recipes import instantiate
    from minbench.pipelines.lightning_setup import build_datamodule, build_trainer
    from minbench.pipelines.segmentation_baselines import compare, print_comparison, run_baselines
    from minbench.pipelines.segmentation_classifier import resolve_classifier
    from minbench.trainers.segmentation import MaskWriter, SegmentationTask, load_classifier

    started = time.perf_counter()
    L.seed_everything(ctx.seed, workers=True, verbose=False)
    fingerprint = read_info(ctx.data_dir).fingerprint
    ref = resolve_classifier(ctx, fingerprint)
    classifier_seconds = time.perf_counter() - started
    net, classes = load_classifier(ref.checkpoint)

    data_args = ctx.config["data"].get("init_args") or {}
    image_size = int(data_args.get("image_size") or ref.image_size or FALLBACK_IMAGE_SIZE)
    model = instantiate(ctx.config["model"], "model", SegmentationTask, classifier=net, classes=classes,
                        image_size=image_size, task=ctx.card.id)
    # the photos are resized to the CAM's input side (cam_scale x the classifier's size)
    dm = build_datamodule(ctx, image_size=model.input_size, classes=list(classes), augment=False)
    dm.setup("predict")
    validation = run_validation(ctx, dm, model)
    writer = MaskWriter(ctx.dir / PREDICTIONS_DIR, cam_dir=ctx.dir / CAMS_DIR)
    trainer = build_trainer(ctx, monitor=None, callbacks=[writer])
    t0 = time.perf_counter()
    trainer.predict(model, datamodule=dm, return_predictions=False)
    cam_seconds = time.perf_counter() - t0
    if not trainer.is_global_zero:
        return None

    from minbench.scoring.score import truth_after_submission

    # every test row (the sealed frame: skipped photos too) gets a mask; then the truth may be read
    filled = fill_missing_masks(ctx.dir / PREDICTIONS_DIR, ctx.card.rows(dm.frame, "test"))
    task_data = truth_after_submission(ctx.card.id, ctx.dir / PREDICTIONS_DIR, ctx.data_dir)
    hp = model.hparams
    cam_label = describe_cam(hp, model.extractor.layer_names, model.threshold_value, model.refine_settings)
    refined = f"+{hp.refine}" if hp.refine != "none" else ""
    scored = ctx.score(ctx.dir / PREDICTIONS_DIR, name=f"{hp.cam}{refined}/{ref.recipe}",
                       method=f"{cam_label} of {ref.recipe} ({ref.task or 'classifier'})",
                       resolved={"classifier": ref.identity})
    metrics, cam_result = dict(scored.metrics), {"ci": scored.ci}

    t1 = time.perf_counter()
    baselines = run_baselines(ctx, task_data)
    baseline_seconds = time.perf_counter() - t1
    per_image = scored.per_sample  # the scorer's per-image iou, dice, pixel_accuracy
    verdicts = compare(f"{hp.cam}{refined}", scored.table, baselines, ctx.card)
    gallery = draw_gallery(ctx, task_data, per_image)
    print_comparison(ctx, f"{hp.cam}{refined}", metrics, cam_result, baselines, verdicts)

    all_metrics = dict(metrics)
    for name, res in baselines.items():
        for key, value in res["metrics"].items():
            all_metrics[f"{name}/{key}"] = value
    return {
        "metrics": all_metrics,
        "cam": {"method": hp.cam, "target": hp.cam_target, "top_k": hp.top_k,
                "target_layers": model.extractor.layer_names, "threshold": hp.threshold,
                "threshold_value": model.threshold_value, "upsample": hp.upsample, "refine": hp.refine,
                "refine_args": model.refine_settings,
                "image_size": image_size, "input_size": model.input_size, "cells": list(model.extractor.cells),
                "tta": hp.tta},
        "validation": validation,
        "classifier": {"checkpoint": str(ref.checkpoint), "source": ref.source, "recipe": ref.recipe,
                       "task": ref.task, "num_classes": len(classes), "identity": ref.identity},
        "baselines": {k: {"metrics": v["metrics"], "ci": v["ci"], "description": v["description"]}
                      for k, v in baselines.items()},
        "verdict": verdicts,
        "n_images": len(task_data.rows), "n_skipped_images_given_empty_masks": filled,
        "world_size": trainer.world_size,
        "stats": {"classifier_seconds": classifier_seconds, "cam_seconds": cam_seconds,
                  "cam_images_per_s": len(task_data.rows) / cam_seconds if cam_seconds > 0 else float("nan"),
                  "baseline_seconds": baseline_seconds, "total_seconds": time.perf_counter() - started},
        "predictions": str(ctx.dir / PREDICTIONS_DIR), "gallery": str(gallery) if gallery else "",
    }


def describe_cam(hp, layers, value=None, settings: dict | None = None) -> str:
    """The CAM, its layers, target, refinement (with its ``settings``, as resolved by the
    model) and threshold, in words (``value``: the level in use, e.g. the one ``val`` chose)."""
    value = hp.threshold_value if value is None else value
    rule = hp.threshold if value is None else f"{hp.threshold} {value:g}"
    target = f"top-{hp.top_k} classes" if hp.cam_target == "topk" else f"{hp.cam_target} class"
    refined = ""
    if getattr(hp, "refine", "none") != "none":
        listed = ", ".join(f"{k} {v:g}" for k, v in (settings or {}).items())
        refined = f", {hp.refine} refinement" + (f" ({listed})" if listed else "")
    return f"{hp.cam} ({','.join(layers)}, {target}{refined}, {rule} threshold)"


def run_validation(ctx: SeedContext, dm, model) -> dict[str, Any] | None:
    """The validation part: the model's maps of its photos (gathered from every DDP rank),
    the ``val`` level chosen on their public masks (``SegmentationTask.tune``), and the
    metrics of the masks then cut, by the scorer's ``score_table``: ``validation.json``
    (None when the card has no part)."""
    from minbench.data.datasets import first_occurrences
    from minbench.dist import gather_objects, is_rank_zero
    from minbench.io import write_json_atomic
    from minbench.models.masking import threshold_cam
    from minbench.pipelines.lightning_setup import build_trainer
    from minbench.scoring.tables import segmentation_table
    from minbench.scoring.formats.mask_pngs import load_true_mask, quantise_score_map
    from minbench.scoring.score import score_table

    if ctx.card.validation is None:
        return None
    dm.setup("validate")
    dm.predict_split = "val"
    try:
        batches = build_trainer(ctx, monitor=None, callbacks=[]).predict(model, datamodule=dm)
    finally:
        dm.predict_split = "test"
    # under DDP each rank predicted a shard (padded with repeats): every rank gathers the
    # whole part, in the part's order, so all ranks choose the same level from the same maps
    shards = gather_objects([(r.sample_id, r.score) for batch in batches or () for r in batch])
    rows = dm.frame_of("val").set_index("sample_id", drop=False)
    by_id = {sid: score for (sid, score), first in zip(shards, first_occurrences([s for s, _ in shards])) if first}
    ids = [sid for sid in rows.index if sid in by_id]
    truths = [load_true_mask(dm.dataset_dir, rows.loc[sid]) for sid in ids]
    scores = [by_id[sid] for sid in ids]
    chosen = model.tune(scores, truths)
    hp = model.hparams
    masks = [threshold_cam(s, hp.threshold, model.threshold_value) for s in scores]
    values, ci = score_table(ctx.card, segmentation_table(zip(masks, truths, map(quantise_score_map, scores))))
    record = {"n_images": len(ids), "metrics": values, "ci": ci, "threshold": hp.threshold,
              "threshold_value": model.threshold_value, "refine": hp.refine,
              "refine_args": model.refine_settings, **chosen,
              "sample_ids": ids}
    if is_rank_zero():
        write_json_atomic(ctx.dir / VALIDATION_FILE, record)
    return record


def fill_missing_masks(folder: Path, rows) -> int:
    """Empty masks (and all-zero score maps, when the folder has maps) for the test images
    the data module skipped up front (an unreadable photo, or a mask that does not fit it),
    so the submission covers every test row; returns how many were filled in."""
    import numpy as np

    from minbench.scoring.formats.mask_pngs import MAPS_DIR, write_mask, write_score_map

    n = 0
    with_maps = (folder / MAPS_DIR).is_dir()
    for r in rows.itertuples(index=False):
        path = folder / f"{r.sample_id}.png"
        if not path.is_file():
            empty = np.zeros((int(r.height), int(r.width)), dtype=np.uint16)
            write_mask(path, empty)
            if with_maps:
                write_score_map(folder, r.sample_id, empty)
            n += 1
    if n:
        print(f"segmentation: the data module skipped {n} test images (see skipped.csv beside its image "
              "cache); they get empty masks (IoU 0 unless their true mask is empty)")
    return n




# --------------------------------------------------------------------------- gallery
def draw_gallery(ctx: SeedContext, task_data, per_image, n: int = 3) -> Path | None:
    """Image, ground truth, CAM heatmap and predicted mask for the best and worst ``n``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from PIL import Image

    from minbench.io import atomic_path
    from minbench.pipelines.segmentation_baselines import load_photo
    from minbench.scoring.formats.mask_pngs import load_true_mask
    from minbench.trainers.segmentation import read_mask

    if per_image is None or not len(per_image):
        return None
    order = per_image.sort_values("iou", ascending=False, kind="stable")
    picks = list(order.head(n).itertuples(index=False))
    worst = [r for r in order.tail(n).itertuples(index=False) if r.sample_id not in {p.sample_id for p in picks}]
    picks += worst[::-1]
    rows = task_data.rows.set_index("sample_id")
    fig, axes = plt.subplots(len(picks), 4, figsize=(12, 2.6 * len(picks)), squeeze=False)
    titles = ("image", "ground truth", "CAM heatmap", "predicted mask")
    for i, pick in enumerate(picks):
        row = rows.loc[pick.sample_id]
        img = load_photo(Path(ctx.data_dir) / row["image_path"])
        h, w = int(row["height"]), int(row["width"])
        if img is None:
            img = np.zeros((h, w, 3), np.uint8)
        small = (max(1, w * 240 // max(h, 1)), 240)
        view = np.asarray(Image.fromarray(img).resize(small))
        true = load_true_mask(Path(ctx.data_dir), _Row(pick.sample_id, row))
        pred = read_mask(ctx.dir / PREDICTIONS_DIR / f"{pick.sample_id}.png")
        cam_path = ctx.dir / CAMS_DIR / f"{pick.sample_id}.png"
        cam = (np.asarray(Image.open(cam_path).convert("L").resize(small, Image.BILINEAR)) / 255.0
               if cam_path.is_file() else np.zeros(small[::-1]))
        panels = [view, _overlay(view, true, small), None, _overlay(view, pred, small)]
        for j, ax in enumerate(axes[i]):
            ax.axis("off")
            if j == 2:
                ax.imshow(view)
                ax.imshow(cam, cmap="jet", alpha=0.5, vmin=0, vmax=1)
            else:
                ax.imshow(panels[j])
            tag = f"{'best' if i < n else 'worst'}: {pick.sample_id}, IoU {pick.iou:.2f}"
            ax.set_title(tag if j == 0 else titles[j], fontsize=9)
    fig.tight_layout()
    out = ctx.dir / GALLERY_FILE
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=80)
    plt.close(fig)
    return out


class _Row:
    def __init__(self, sample_id, row):
        self.sample_id, self.mask_path = sample_id, row["mask_path"]
        self.width, self.height = int(row["width"]), int(row["height"])


def _overlay(view, mask, size):
    """The mask's outline drawn on the photo (``data show``'s rule): the pixels inside keep
    the photo's colours."""
    import numpy as np
    from PIL import Image

    from minbench.data.show import mask_outline

    band = np.asarray(mask_outline(Image.fromarray(mask.astype(np.uint8) * 255).resize(size, Image.NEAREST),
                                   width=2)) > 0
    out = view.copy()
    out[band] = (0, 255, 0)
    return out
