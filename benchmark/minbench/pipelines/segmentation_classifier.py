"""Where the segmentation task's classifier comes from (classifier sourcing).

In order: ``model.init_args.classifier`` (``--classifier CKPT``) when given; else a finished
few-shot run on the same dataset under ``./runs`` (the default recipe first); else one
trained before (cached under ``$MINBENCH_HOME/classifiers/``); else the few-shot default
recipe is trained on ``fewshot-10`` now (a few epochs at 64 px on a CPU) through the
runner's public entry point (``runner.run_recipe``) into that cache.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from minbench.errors import UserError
from minbench.io import read_json, read_yaml
from minbench.pipelines.context import SeedContext

CLASSIFIER_TASK = "fewshot-10"
CLASSIFIER_RECIPE = "fewshot-small-cnn"
CLASSIFIER_INFO = "classifier.json"


@dataclass
class ClassifierRef:
    """Where the classifier comes from and how it was trained."""

    checkpoint: Path
    source: str            # given | run | cached | trained
    image_size: int | None  # its training input side, when known
    recipe: str
    task: str
    #: what makes two seeds' classifiers the same method (the segmentation entry's identity):
    #: the hash of the run config it was trained by, or of the checkpoint file when given
    identity: dict[str, str] | None = None


def _run_config(checkpoint: Path) -> dict[str, Any] | None:
    """The ``config.yaml`` of the minbench run a checkpoint belongs to (or None)."""
    for parent in list(checkpoint.parents)[:4]:
        path = parent / "config.yaml"
        if path.is_file():
            try:
                raw = read_yaml(path, "run config")
            except UserError:
                return None
            return raw if isinstance(raw, dict) else None
    return None


def _ref_from_checkpoint(path: Path, source: str) -> ClassifierRef:
    import hashlib

    from minbench.recipes import config_hash

    config = _run_config(path) or {}
    size = ((config.get("data") or {}).get("init_args") or {}).get("image_size")
    info = path.parent / CLASSIFIER_INFO
    if info.is_file():
        meta = read_json(info, "classifier info")
        size = meta.get("image_size", size) if isinstance(meta, dict) else size
    if source == "given":  # any file: its bytes are its identity
        with open(path, "rb") as f:
            identity = {"checkpoint_sha256": hashlib.file_digest(f, "sha256").hexdigest()[:16]}
    else:                  # a finished run: its method, whichever seed
        identity = {"recipe": str(config.get("name", "")), "config_hash": config_hash(config)}
    return ClassifierRef(path, source, int(size) if isinstance(size, int) else None,
                         str(config.get("name", path.stem)), str(config.get("task", "")), identity)


def find_run_checkpoint(fingerprint: str, runs_dir: Path = Path("runs")) -> Path | None:
    """A finished few-shot run's checkpoint on this dataset under ``runs_dir``."""
    from minbench.cards import all_cards
    from minbench.recipes import canonical_class_path

    fewshot = [c.id for c in all_cards().values() if c.kind == "classification"]
    found = []
    for task in fewshot:
        for config_path in sorted((runs_dir / task).glob("*/config.yaml")):
            try:
                config = read_yaml(config_path, "run config") or {}
            except UserError:
                continue
            if not isinstance(config, dict):
                continue
            if (config.get("dataset") or {}).get("fingerprint") != fingerprint:
                continue
            class_path = canonical_class_path(str((config.get("model") or {}).get("class_path", "")))
            if not class_path.endswith(".ClassificationTask"):
                continue  # training-free heads have no gradient path for a CAM
            for status_path in sorted(config_path.parent.glob("seed*/status.json")):
                try:
                    status = read_json(status_path, "seed status")
                except UserError:
                    continue
                if not isinstance(status, dict):
                    continue
                ckpt = Path(str(status.get("checkpoint") or ""))
                if status.get("state") == "finished" and ckpt.is_file():
                    found.append((config.get("name") != CLASSIFIER_RECIPE, task != CLASSIFIER_TASK, str(ckpt)))
    return Path(min(found)[2]) if found else None


def _cached_dir(fingerprint: str, seed: int, chash: str) -> Path:
    """The cache entry of one default classifier: dataset, recipe config (so an edited or
    updated recipe, or other --weights, never reuses an old classifier) and seed."""
    from minbench.paths import cache_dir

    fp = fingerprint.split(":")[-1][:12]
    return cache_dir() / "classifiers" / f"{CLASSIFIER_TASK}-{CLASSIFIER_RECIPE}-{fp}-{chash[:8]}-seed{seed}"


def default_classifier_config(ctx: SeedContext) -> tuple[dict[str, Any], str]:
    """The run config of the default classifier for this run (the shipped recipe on
    ``CLASSIFIER_TASK``, with ``--weights``) and its ``config_hash``."""
    from minbench._version import __version__
    from minbench.recipes import config_hash, load_recipe, shipped_recipes
    from minbench.pipelines.resolve import dataset_section

    recipes = shipped_recipes()
    if CLASSIFIER_RECIPE not in recipes:
        raise UserError(f"baselines/{CLASSIFIER_RECIPE}.yaml is missing: pass --classifier CKPT")
    config = load_recipe(recipes[CLASSIFIER_RECIPE])
    config.update(task=CLASSIFIER_TASK, recipe=str(recipes[CLASSIFIER_RECIPE]), logger="csv",
                  dataset=dataset_section(Path(ctx.data_dir)), minbench_version=__version__)
    weights = ctx.config.get("classifier_weights")  # --weights: the default classifier's backbone
    if weights:
        config["model"]["init_args"]["weights"] = weights
    return config, config_hash(config)


def train_default_classifier(ctx: SeedContext, fingerprint: str) -> ClassifierRef:
    """Train (or reuse the cached) few-shot default classifier on this dataset: a run of the
    default recipe through the runner's entry point, into the cache."""
    import shutil

    from minbench.cards import get_card
    from minbench.console import notice
    from minbench.io import file_lock, write_json_atomic
    from minbench.pipelines.run_folder import RunFolder
    from minbench.pipelines.runner import run_recipe

    config, chash = default_classifier_config(ctx)
    identity = {"recipe": CLASSIFIER_RECIPE, "config_hash": chash}
    root = _cached_dir(fingerprint, ctx.seed, chash)
    info_path = root / CLASSIFIER_INFO
    with file_lock(root.parent / f".{root.name}.lock"):
        try:  # a damaged info file is a cache miss: the classifier is trained again
            meta = read_json(info_path, "classifier info", missing=None)
        except UserError:
            meta = None
        if isinstance(meta, dict) and meta.get("checkpoint"):
            ckpt = Path(meta["checkpoint"])
            if meta.get("fingerprint") == fingerprint and meta.get("config_hash") == chash and ckpt.is_file():
                return ClassifierRef(ckpt, "cached", meta.get("image_size"), meta["recipe"], meta["task"], identity)
        notice(f"segmentation: training the default classifier ({CLASSIFIER_RECIPE} on {CLASSIFIER_TASK}) "
               f"into {root}")
        shutil.rmtree(root, ignore_errors=True)  # an interrupted attempt: this cache entry is ours
        summary = run_recipe(get_card(CLASSIFIER_TASK), config, Path(ctx.data_dir), root, seeds=[ctx.seed],
                             leaderboard=False, quiet=ctx.quiet, summary=False)
        if summary is None:  # a non-zero DDP rank
            raise UserError("segmentation: train the classifier in one process (devices: 1)")
        result = RunFolder(root).seed_status(ctx.seed)
        top1 = (result.get("metrics") or {}).get("top1")
        notice(f"segmentation: default classifier trained ({CLASSIFIER_TASK} test top-1 "
               f"{top1:.3f})" if top1 is not None else "segmentation: default classifier trained")
        ckpt = Path(result["checkpoint"])
        size = (config.get("data") or {}).get("init_args", {}).get("image_size")
        meta = {"checkpoint": str(ckpt), "fingerprint": fingerprint, "recipe": CLASSIFIER_RECIPE,
                "config_hash": chash, "task": CLASSIFIER_TASK, "image_size": size, "seed": ctx.seed,
                "metrics": result.get("metrics", {})}
        write_json_atomic(info_path, meta)
    return ClassifierRef(ckpt, "trained", size, CLASSIFIER_RECIPE, CLASSIFIER_TASK, identity)


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
