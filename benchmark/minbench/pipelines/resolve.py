"""What ``minbench run`` was asked for, resolved: recipe + the command's values -> the checked
config. ``RunRequest`` holds the command's values as plain data (the CLI builds it); nothing
slow happens here: every key is checked against its target's signature
(``pipelines/validate.py``) before any data is built.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from minbench.cards import TaskCard, get_card
from minbench.errors import UserError
from minbench.pipelines.kinds import default_recipe, pipeline_hooks
from minbench.recipes import apply_override, flatten, load_recipe, recipe_path, shipped_recipes

#: the segmentation model's init arguments a run may set directly (``--cam``, ``--top-k`` ...)
CAM_OPTIONS = ("cam", "cam_target", "top_k", "target_layer", "reshape", "threshold", "threshold_value", "upsample",
               "refine", "cam_scale", "tta")

#: hardware options -> trainer key
HARDWARE_OPTIONS = {"devices": "devices", "accelerator": "accelerator", "strategy": "strategy",
                    "num_nodes": "num_nodes"}

#: keys --resume may change: where and how the run computes, not what it computes
RESUMABLE_KEYS = ("trainer.devices", "trainer.accelerator", "trainer.strategy", "trainer.num_nodes",
                  "trainer.max_epochs", "logger")


@dataclass
class RunRequest:
    """The values of one ``minbench run`` (None: not given; messages name them as flags)."""

    task: str | None = None
    config: str | None = None          # a recipe path or a shipped recipe's name
    data: Path | None = None
    out: Path | None = None
    seed: int | None = None
    seeds: list[int] | None = None
    max_epochs: int | None = None
    weights: Path | None = None
    cam: str | None = None
    cam_target: str | None = None
    top_k: int | None = None
    target_layer: str | None = None
    reshape: str | None = None
    threshold: str | None = None
    threshold_value: float | None = None
    upsample: str | None = None
    refine: str | None = None
    cam_scale: float | None = None
    tta: str | None = None
    classifier: Path | None = None
    logger: str | None = None
    devices: str | None = None
    accelerator: str | None = None
    strategy: str | None = None
    num_nodes: int | None = None
    overrides: list[str] = field(default_factory=list)   # KEY=VALUE (``--set``)
    resume: bool = False
    overwrite: bool = False
    leaderboard: bool = True
    quiet: bool = False
    command: str = ""                  # the command line, recorded in the run's config


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _recipe_of(request: RunRequest) -> Path:
    """The recipe file a request names, else its task kind's default recipe."""
    if request.config is not None:
        return recipe_path(request.config)
    if request.task is None:
        raise UserError("--task is required when no --config is given")
    card = get_card(request.task)
    pipeline_hooks(card.kind)  # a kind without a pipeline says so first
    default = default_recipe(card.kind)
    recipes = shipped_recipes()
    if default not in recipes:
        raise UserError(f"no default recipe for {card.kind} tasks (baselines/{default}.yaml missing)")
    return recipes[default]


def resolve_config(request: RunRequest, origins: dict[str, str] | None = None) -> tuple[dict[str, Any], TaskCard]:
    """Recipe + the request's values -> the resolved, checked config and the task card.

    ``origins`` (filled in when given) maps each dotted key the request set to the flag
    that set it, so a mistake names the flag.
    """
    from minbench.pipelines.validate import validate_run

    path = _recipe_of(request)
    config = load_recipe(path)
    task = request.task or config.get("task")
    if task is None:
        raise UserError(f"{path}: names no task; pass --task")
    card = get_card(task)
    recipe_task = config.get("task")
    if recipe_task is not None and get_card(recipe_task).kind != card.kind:
        raise UserError(f"--config {path}: a recipe for {get_card(recipe_task).kind} tasks "
                        f"cannot run --task {task} ({card.kind})")
    config["task"] = task
    config["recipe"] = str(path)
    origins = {} if origins is None else origins
    if request.seed is not None:
        config["seeds"] = [request.seed]
        origins["seeds"] = f"--seed {request.seed}"
    elif request.seeds is not None:
        config["seeds"] = list(dict.fromkeys(request.seeds))
        origins["seeds"] = "--seeds " + " ".join(map(str, request.seeds))
    config["seeds"] = config.get("seeds") or [0]
    apply_request(config, request, origins)
    validate_run(config, card, origins, pipeline_hooks(card.kind))
    config["seeds"] = [int(s) for s in config["seeds"]]
    return config, card


def apply_request(config: dict[str, Any], request: RunRequest, origins: dict[str, str] | None = None) -> None:
    """The request's options and ``--set`` values into ``config`` (in place); ``origins``
    records which flag set which dotted key."""
    origins = {} if origins is None else origins
    kind = get_card(config["task"]).kind
    trainer = config.setdefault("trainer", {})
    model_args = config["model"].setdefault("init_args", {})
    if request.max_epochs is not None:
        trainer["max_epochs"] = request.max_epochs
        origins["trainer.max_epochs"] = f"--max-epochs {request.max_epochs}"
    for name, key in HARDWARE_OPTIONS.items():
        value = getattr(request, name)
        if value is not None:
            trainer[key] = int(value) if str(value).isdigit() else value
            origins[f"trainer.{key}"] = f"{_flag(name)} {value}"
    if request.weights is not None:
        _apply_weights(config, model_args, kind, request.weights, origins)
    for name in (*CAM_OPTIONS, "classifier"):
        value = getattr(request, name)
        if value is None:
            continue
        if kind != "segmentation":
            raise UserError(f"{_flag(name)} applies to the segmentation task only")
        if name == "classifier":
            path = Path(value).expanduser()
            if not path.is_file():
                raise UserError(f"--classifier {path}: no such checkpoint file")
            value = str(path.resolve())
        model_args[name] = value
        origins[f"model.init_args.{name}"] = f"{_flag(name)} {getattr(request, name)}"
    if request.logger is not None:
        config["logger"] = request.logger
        origins["logger"] = f"--logger {request.logger}"
    config.setdefault("logger", "csv")
    for assignment in request.overrides or []:
        apply_override(config, assignment)
        origins[assignment.split("=", 1)[0].strip()] = f"--set {assignment}"


def _apply_weights(config: dict[str, Any], model_args: dict[str, Any], kind: str, given: Path,
                   origins: dict[str, str]) -> None:
    weights = Path(given).expanduser()
    if not weights.is_file():
        raise UserError(f"--weights {weights}: no such file")
    if kind == "segmentation":  # for the backbone of the default classifier it trains
        config["classifier_weights"] = str(weights.resolve())
        origins["classifier_weights"] = f"--weights {given}"
    else:
        model_args["weights"] = str(weights.resolve())
        origins["model.init_args.weights"] = f"--weights {given}"


def resume_overrides(stored: dict[str, Any], request: RunRequest) -> dict[str, Any]:
    """The stored config with this request's values re-applied. Hardware, logger and
    ``--max-epochs`` may change (``RESUMABLE_KEYS``); any other value or ``--set`` must
    match the stored one, else a ``UserError`` names each one that differs."""
    from minbench.pipelines.validate import validate_run

    config = copy.deepcopy(stored)
    origins = _resume_origins(stored, config, request)
    before, after = flatten(stored), flatten(config)
    differ = []
    for origin_key, flag in origins.items():
        changed = [k for k in set(before) | set(after)
                   if (k == origin_key or k.startswith(origin_key + ".")) and before.get(k) != after.get(k)]
        if changed and not any(origin_key == r or origin_key.startswith(r + ".") for r in RESUMABLE_KEYS):
            k = sorted(changed)[0]
            differ.append(f"--resume: {flag} differs from the stored run ({k} = {before.get(k)!r}); "
                          "a resumed run keeps its settings (start a new run with --overwrite or another --out)")
    if differ:
        raise UserError("\n".join(differ))
    card = get_card(config["task"])
    validate_run(config, card, origins, pipeline_hooks(card.kind))
    return config


def _resume_origins(stored: dict[str, Any], config: dict[str, Any], request: RunRequest) -> dict[str, str]:
    """Apply the request to ``config`` (a copy of ``stored``); returns key -> the flag that set it."""
    origins: dict[str, str] = {}
    if request.seed is not None or request.seeds is not None:
        wanted = [request.seed] if request.seed is not None else list(dict.fromkeys(request.seeds))
        if [int(s) for s in wanted] != [int(s) for s in stored.get("seeds", [])]:
            origins["seeds"] = f"--seed {request.seed}" if request.seed is not None else \
                "--seeds " + " ".join(map(str, request.seeds))
            config["seeds"] = wanted
    apply_request(config, request, origins)
    if request.data is not None:
        given = Path(request.data).expanduser().resolve()
        if str(given) != str(stored.get("dataset", {}).get("dir")):
            origins["dataset"] = f"--data {request.data}"
            config.setdefault("dataset", {})["dir"] = str(given)
    if request.task is not None and request.task != stored.get("task"):
        origins["task"] = f"--task {request.task}"
        config["task"] = request.task
    if request.config is not None:
        path = str(recipe_path(request.config))
        if path != str(stored.get("recipe")):
            origins["recipe"] = f"--config {request.config}"
            config["recipe"] = path
    return origins


def dataset_section(data_dir: Path) -> dict[str, Any]:
    """The ``dataset`` section of a run's config: folder, name, version, manifest fingerprint."""
    from minbench.data.manifest import read_info

    info = read_info(data_dir)
    return {"dir": str(data_dir), "name": info.name, "version": info.version, "fingerprint": info.fingerprint}
