"""``minbench run --task segmentation``: zero-shot masks from a classifier's CAM, scored.

One seed:

1. the classifier: ``model.init_args.classifier`` (``--classifier CKPT``) when given;
   else a finished few-shot run on the same dataset under ``./runs`` (the default
   recipe first); else one this pipeline trained before (cached under
   ``$MINBENCH_HOME/classifiers/``); else it trains the few-shot default recipe on
   ``fewshot-10`` now (a few epochs at 64 px on a CPU) and caches it;
2. CAMs of the segmentation images (``SegmentationTrainer``; the data module resizes each
   photo whole to the classifier's input size), upsampled to the photo's resolution and
   thresholded: ``predictions/<sample_id>.png`` (the submission) and ``cams/`` (8-bit CAMs);
3. the scorer scores the folder and the leaderboard entry is added (``ctx.score``);
4. reference baselines without any classifier (``centre``, ``colour``, ``border``:
   ``minbench.models.saliency_baselines``) are written and scored the same way, and the
   summary says plainly when the CAM does not beat one of them;
5. ``plots/gallery.png``: image, ground truth, CAM heatmap and mask of the best and worst
   images by IoU.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from minbench.errors import UserError
from minbench.pipelines.runner import SeedContext

DEFAULT_RECIPE = "segmentation-gradcam"
CLASSIFIER_TASK = "fewshot-10"
CLASSIFIER_RECIPE = "fewshot-small-cnn"
PREDICTIONS_DIR = "predictions"
CAMS_DIR = "cams"
BASELINES_DIR = "baselines"
GALLERY_FILE = "plots/gallery.png"
CLASSIFIER_INFO = "classifier.json"
FALLBACK_IMAGE_SIZE = 224


@dataclass
class ClassifierRef:
    """Where the classifier comes from and how it was trained."""

    checkpoint: Path
    source: str            # given | run | cached | trained
    image_size: int | None  # its training input side, when known
    recipe: str
    task: str


# --------------------------------------------------------------------------- classifier
def _run_config(checkpoint: Path) -> dict[str, Any] | None:
    """The ``config.yaml`` of the minbench run a checkpoint belongs to (or None)."""
    import yaml

    for parent in list(checkpoint.parents)[:4]:
        path = parent / "config.yaml"
        if path.is_file():
            try:
                raw = yaml.safe_load(path.read_text(encoding="utf-8"))
            except yaml.YAMLError:
                return None
            return raw if isinstance(raw, dict) else None
    return None


def _ref_from_checkpoint(path: Path, source: str) -> ClassifierRef:
    config = _run_config(path) or {}
    size = ((config.get("data") or {}).get("init_args") or {}).get("image_size")
    info = path.parent / CLASSIFIER_INFO
    if info.is_file():
        meta = json.loads(info.read_text(encoding="utf-8"))
        size = meta.get("image_size", size)
    return ClassifierRef(path, source, int(size) if isinstance(size, int) else None,
                         str(config.get("name", path.stem)), str(config.get("task", "")))


def find_run_checkpoint(fingerprint: str, runs_dir: Path = Path("runs")) -> Path | None:
    """A finished few-shot run's checkpoint on this dataset under ``runs_dir``."""
    import yaml

    from minbench.cards import all_cards

    fewshot = [c.id for c in all_cards().values() if c.kind == "classification"]
    found = []
    for task in fewshot:
        for config_path in sorted((runs_dir / task).glob("*/config.yaml")):
            try:
                config = yaml.safe_load(config_path.read_text(encoding="utf-8")) or {}
            except (OSError, yaml.YAMLError):
                continue
            if (config.get("dataset") or {}).get("fingerprint") != fingerprint:
                continue
            if "ClassificationTrainer" not in str((config.get("model") or {}).get("class_path", "")):
                continue  # training-free heads have no gradient path for a CAM
            for status_path in sorted(config_path.parent.glob("seed*/status.json")):
                try:
                    status = json.loads(status_path.read_text(encoding="utf-8"))
                except (OSError, ValueError):
                    continue
                ckpt = Path(str(status.get("checkpoint") or ""))
                if status.get("state") == "finished" and ckpt.is_file():
                    found.append((config.get("name") != CLASSIFIER_RECIPE, task != CLASSIFIER_TASK, str(ckpt)))
    return Path(min(found)[2]) if found else None


def _cached_dir(fingerprint: str, seed: int, weights: str | None = None) -> Path:
    import hashlib

    from minbench.paths import cache_dir

    fp = fingerprint.split(":")[-1][:12]
    tag = f"-w{hashlib.sha256(str(weights).encode()).hexdigest()[:8]}" if weights else ""
    return cache_dir() / "classifiers" / f"{CLASSIFIER_TASK}-{CLASSIFIER_RECIPE}-{fp}{tag}-seed{seed}"


def train_default_classifier(ctx: SeedContext, fingerprint: str) -> ClassifierRef:
    """Train (or reuse the cached) few-shot default classifier on this dataset."""
    from minbench.cards import get_card
    from minbench.io import file_lock, write_json_atomic
    from minbench.pipelines import classification
    from minbench.pipelines.config import load_recipe, shipped_recipes
    from minbench.pipelines.run_folder import RunFolder

    weights = ctx.config.get("classifier_weights")  # --weights: the default classifier's backbone
    root = _cached_dir(fingerprint, ctx.seed, weights)
    info_path = root / CLASSIFIER_INFO
    with file_lock(root.parent / f".{root.name}.lock"):
        if info_path.is_file():
            meta = json.loads(info_path.read_text(encoding="utf-8"))
            ckpt = Path(meta["checkpoint"])
            if meta.get("fingerprint") == fingerprint and ckpt.is_file():
                return ClassifierRef(ckpt, "cached", meta.get("image_size"), meta["recipe"], meta["task"])
        recipes = shipped_recipes()
        if CLASSIFIER_RECIPE not in recipes:
            raise UserError(f"baselines/{CLASSIFIER_RECIPE}.yaml is missing: pass --classifier CKPT")
        config = load_recipe(recipes[CLASSIFIER_RECIPE])
        config.update(task=CLASSIFIER_TASK, seeds=[ctx.seed], logger="csv")
        if weights:
            config["model"]["init_args"]["weights"] = weights
        seed_dir = root / f"seed{ctx.seed}"
        seed_dir.mkdir(parents=True, exist_ok=True)
        from minbench.console import notice

        notice(f"segmentation: training the default classifier ({CLASSIFIER_RECIPE} on {CLASSIFIER_TASK}) "
               f"into {root}")
        sub = SeedContext(card=get_card(CLASSIFIER_TASK), config=config, data_dir=ctx.data_dir, seed=ctx.seed,
                          dir=seed_dir, folder=RunFolder(root), leaderboard=False, quiet=ctx.quiet)
        result = classification.run_seed(sub)
        if result is None:  # a non-zero DDP rank
            raise UserError("segmentation: train the classifier in one process (devices: 1)")
        ckpt = Path(result["checkpoint"])
        size = (config.get("data") or {}).get("init_args", {}).get("image_size")
        meta = {"checkpoint": str(ckpt), "fingerprint": fingerprint, "recipe": CLASSIFIER_RECIPE,
                "task": CLASSIFIER_TASK, "image_size": size, "seed": ctx.seed,
                "metrics": result.get("metrics", {})}
        write_json_atomic(info_path, meta)
    return ClassifierRef(ckpt, "trained", size, CLASSIFIER_RECIPE, CLASSIFIER_TASK)


def resolve_classifier(ctx: SeedContext, fingerprint: str) -> ClassifierRef:
    """The classifier to explain: given, a finished few-shot run, cached, or trained now."""
    given = (ctx.config["model"].get("init_args") or {}).get("classifier")
    if given:
        path = Path(str(given)).expanduser()
        if not path.is_file():
            raise UserError(f"--classifier {path}: no such checkpoint file")
        return _ref_from_checkpoint(path, "given")
    run_ckpt = None if ctx.config.get("classifier_weights") else find_run_checkpoint(fingerprint)
    if run_ckpt is not None:
        return _ref_from_checkpoint(run_ckpt, "run")
    return train_default_classifier(ctx, fingerprint)


# --------------------------------------------------------------------------- one seed
def run_seed(ctx: SeedContext) -> dict[str, Any] | None:
    import lightning as L

    from minbench.data.manifest import read_info
    from minbench.pipelines.config import instantiate
    from minbench.pipelines.lightning_setup import build_datamodule, build_trainer
    from minbench.trainers.segmentation import MaskWriter, SegmentationTrainer, load_classifier

    started = time.perf_counter()
    L.seed_everything(ctx.seed, workers=True, verbose=False)
    fingerprint = read_info(ctx.data_dir).fingerprint
    ref = resolve_classifier(ctx, fingerprint)
    classifier_seconds = time.perf_counter() - started
    net, classes = load_classifier(ref.checkpoint)

    data_args = ctx.config["data"].get("init_args") or {}
    image_size = int(data_args.get("image_size") or ref.image_size or FALLBACK_IMAGE_SIZE)
    dm = build_datamodule(ctx, image_size=image_size, classes=list(classes), augment=False)
    dm.setup("predict")
    model = instantiate(ctx.config["model"], "model", SegmentationTrainer, classifier=net, classes=classes,
                        image_size=image_size, task=ctx.card.id)
    writer = MaskWriter(ctx.dir / PREDICTIONS_DIR, cam_dir=ctx.dir / CAMS_DIR)
    trainer = build_trainer(ctx, monitor=None, callbacks=[writer])
    t0 = time.perf_counter()
    trainer.predict(model, datamodule=dm, return_predictions=False)
    cam_seconds = time.perf_counter() - t0
    if not trainer.is_global_zero:
        return None

    from minbench.scoring.score import load_task_data

    task_data = load_task_data(ctx.card.id, ctx.data_dir)
    filled = fill_missing_masks(ctx.dir / PREDICTIONS_DIR, task_data.rows)
    hp = model.hparams
    cam_label = describe_cam(hp, model.extractor.layer_names)
    ctx.config["name"] = f"{hp.cam}/{ref.recipe}"
    ctx.config["description"] = f"{cam_label} of {ref.recipe} ({ref.task or 'classifier'})"
    metrics = ctx.score(ctx.dir / PREDICTIONS_DIR)
    cam_result = _read_score(ctx.dir / "score.json")

    t1 = time.perf_counter()
    baselines = run_baselines(ctx, task_data)
    baseline_seconds = time.perf_counter() - t1
    per_image = per_image_iou(ctx, task_data)
    verdicts = compare(hp.cam, metrics, baselines, ctx.card.headline)
    gallery = draw_gallery(ctx, task_data, per_image)
    print_comparison(ctx, hp.cam, metrics, cam_result, baselines, verdicts)

    all_metrics = dict(metrics)
    for name, res in baselines.items():
        for key, value in res["metrics"].items():
            all_metrics[f"{name}/{key}"] = value
    return {
        "metrics": all_metrics,
        "cam": {"method": hp.cam, "target": hp.cam_target, "top_k": hp.top_k,
                "target_layers": model.extractor.layer_names, "threshold": hp.threshold,
                "threshold_value": model.threshold_value, "upsample": hp.upsample, "image_size": image_size},
        "classifier": {"checkpoint": str(ref.checkpoint), "source": ref.source, "recipe": ref.recipe,
                       "task": ref.task, "num_classes": len(classes)},
        "baselines": {k: {"metrics": v["metrics"], "ci": v["ci"], "description": v["description"]}
                      for k, v in baselines.items()},
        "verdict": verdicts,
        "n_images": len(task_data.rows), "n_skipped_images_given_empty_masks": filled,
        "stats": {"classifier_seconds": classifier_seconds, "cam_seconds": cam_seconds,
                  "cam_images_per_s": len(task_data.rows) / cam_seconds if cam_seconds > 0 else float("nan"),
                  "baseline_seconds": baseline_seconds, "total_seconds": time.perf_counter() - started},
        "predictions": str(ctx.dir / PREDICTIONS_DIR), "gallery": str(gallery) if gallery else "",
    }


def describe_cam(hp, layers) -> str:
    rule = hp.threshold if hp.threshold == "otsu" else f"{hp.threshold} {hp.threshold_value}"
    target = f"top-{hp.top_k} classes" if hp.cam_target == "topk" else f"{hp.cam_target} class"
    return f"{hp.cam} ({','.join(layers)}, {target}, {rule} threshold)"


def _read_score(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def fill_missing_masks(folder: Path, rows) -> int:
    """Empty masks for the test images the data module skipped up front (an unreadable
    photo, or a mask that does not fit it), so the submission covers every test row;
    returns how many were filled in."""
    import numpy as np

    from minbench.trainers.segmentation import write_mask

    n = 0
    for r in rows.itertuples(index=False):
        path = folder / f"{r.sample_id}.png"
        if not path.is_file():
            write_mask(path, np.zeros((int(r.height), int(r.width)), dtype=bool))
            n += 1
    if n:
        print(f"segmentation: the data module skipped {n} test images (see skipped.csv beside its image "
              "cache); they get empty masks (IoU 0 unless their true mask is empty)")
    return n


# --------------------------------------------------------------------------- baselines
def load_rgb(path: Path):
    """An image file as RGB uint8 (upright); None when it cannot be decoded."""
    import numpy as np
    from PIL import Image, ImageOps

    try:
        with Image.open(path) as im:
            return np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
    except (OSError, ValueError, Image.DecompressionBombError):
        return None


def run_baselines(ctx: SeedContext, task_data) -> dict[str, dict[str, Any]]:
    """Write and score every reference baseline; leaderboard entries when enabled."""
    import numpy as np

    from minbench.io import atomic_path
    from minbench.models.saliency_baselines import BASELINES
    from minbench.scoring.score import score_submission, write_score_json
    from minbench.trainers.segmentation import write_mask

    rows = task_data.rows
    images = {}  # decoded once, shared by the baselines (the segmentation set is small)
    for r in rows.itertuples(index=False):
        images[r.sample_id] = load_rgb(Path(ctx.data_dir) / r.image_path)
    results = {}
    for name, (description, fn) in BASELINES.items():
        folder = ctx.dir / BASELINES_DIR / name
        with atomic_path(folder) as tmp:
            tmp.mkdir(parents=True)
            for r in rows.itertuples(index=False):
                img = images[r.sample_id]
                mask = fn(img)[1] if img is not None else np.zeros((int(r.height), int(r.width)), bool)
                write_mask(tmp / f"{r.sample_id}.png", mask)
        res = score_submission(ctx.card.id, folder, ctx.data_dir, task_data=task_data)
        write_score_json(res, folder.with_name(f"{name}.score.json"))
        if ctx.leaderboard:
            from minbench.scoring.leaderboard import add_entry

            add_entry(ctx.card.id, res, name=f"baseline/{name}", method=f"reference baseline: {description}",
                      source="run", config={"baseline": name}, seed=None)
        results[name] = {"metrics": {k: float(v) for k, v in res.metrics.items()}, "ci": res.ci,
                         "description": description, "per_sample": res.per_sample}
    return results


def per_image_iou(ctx: SeedContext, task_data):
    """Per-image IoU, Dice, pixel accuracy of the written CAM masks (the scorer's per-image
    rule, without a second bootstrap pass)."""
    import pandas as pd

    from minbench.scoring.metrics import per_image_scores, segmentation_table
    from minbench.scoring.score import load_true_mask
    from minbench.trainers.segmentation import read_mask

    pairs = ((read_mask(ctx.dir / PREDICTIONS_DIR / f"{r.sample_id}.png"), load_true_mask(Path(ctx.data_dir), r))
             for r in task_data.rows.itertuples(index=False))
    scores = per_image_scores(segmentation_table(pairs))
    return pd.DataFrame({"sample_id": list(task_data.rows["sample_id"]), **scores})


def compare(cam: str, metrics: dict[str, float], baselines: dict[str, dict], headline: str) -> list[str]:
    """One line per baseline: does the CAM beat it on the headline metric?"""
    lines = []
    ours = metrics.get(headline, float("nan"))
    for name, res in baselines.items():
        theirs = res["metrics"].get(headline, float("nan"))
        if ours > theirs:
            lines.append(f"{cam} beats the {name} baseline ({headline} {ours:.3f} > {theirs:.3f})")
        else:
            lines.append(f"{cam} does NOT beat the {name} baseline ({headline} {ours:.3f} <= {theirs:.3f}): "
                         f"{res['description']} does as well without a classifier")
    return lines


def print_comparison(ctx: SeedContext, cam: str, metrics, cam_result, baselines, verdicts) -> None:
    from rich.console import Console
    from rich.table import Table

    headline = ctx.card.headline
    names = [s.name for s in ctx.card.metrics]
    table = Table(title=f"segmentation · seed {ctx.seed} · {len(next(iter(baselines.values()))['per_sample'])} images")
    table.add_column("method")
    for n in names:
        table.add_column(n + (" (95% CI)" if n == headline else ""), justify="right")

    def row(label, m, ci):
        cells = []
        for n in names:
            text = f"{m.get(n, float('nan')):.3f}"
            if n == headline and ci.get(n):
                text += f" [{ci[n]['low']:.3f}, {ci[n]['high']:.3f}]"
            cells.append(text)
        table.add_row(label, *cells)

    row(f"CAM: {cam}", metrics, cam_result.get("ci", {}))
    for name, res in baselines.items():
        row(f"baseline: {name}", res["metrics"], res["ci"])
    console = Console()
    console.print(table)
    for line in verdicts:
        console.print(("[green]" if " beats " in line else "[bold red]") + line)


# --------------------------------------------------------------------------- gallery
def draw_gallery(ctx: SeedContext, task_data, per_image, n: int = 3) -> Path | None:
    """Image, ground truth, CAM heatmap and predicted mask for the best and worst ``n``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from PIL import Image

    from minbench.io import atomic_path
    from minbench.scoring.score import load_true_mask
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
        img = load_rgb(Path(ctx.data_dir) / row["image_path"])
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
    import numpy as np
    from PIL import Image

    m = np.asarray(Image.fromarray(mask.astype(np.uint8) * 255).resize(size, Image.NEAREST)) > 0
    out = view.astype(np.float32).copy()
    out[m] = 0.45 * out[m] + 0.55 * np.array([0, 255, 0], np.float32)
    return out.astype(np.uint8)
