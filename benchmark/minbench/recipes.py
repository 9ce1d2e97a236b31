"""Baseline recipes: reading, command-line overrides and instantiation.

A recipe is one YAML file in LightningCLI's shape::

    name: small-cnn                       # optional (default: the file name)
    description: what the recipe is       # optional, goes to the leaderboard entry
    role: reference                       # optional: a reference baseline (what one cue alone solves),
                                          # marked so on the board; default: method
    task: fewshot-10                      # default task; --task overrides
    seeds: [0]                            # default seeds; --seed/--seeds override
    model: {class_path: minbench.trainers.classification.ClassificationTask, init_args: {...}}
    data:  {class_path: minbench.data.datamodule.MineralDataModule, init_args: {...}}
    trainer: {max_epochs: 10, ...}        # keyword arguments of lightning.pytorch.Trainer

``--config`` takes a path or the name of a shipped recipe (``baselines/<name>.yaml``).
"""

from __future__ import annotations

import copy
import json
import difflib
import importlib
import inspect
from pathlib import Path
from typing import Any

import yaml

from minbench.errors import UserError
from minbench.io import read_yaml
from minbench.paths import shipped_dir

SECTIONS = ("name", "description", "role", "task", "seeds", "model", "data", "trainer", "logger")

#: class paths of earlier versions -> today's, so a stored run's ``config.yaml``
#: (``--resume``, classifier sourcing) still resolves after a rename
CLASS_PATH_ALIASES = {
    f"minbench.trainers.{module}.{old}": f"minbench.trainers.{module}.{new}"
    for module, old, new in (
        ("classification", "ClassificationTrainer", "ClassificationTask"),
        ("classification", "FeatureBaselineTrainer", "FeatureBaselineTask"),
        ("segmentation", "SegmentationTrainer", "SegmentationTask"),
        ("size", "SizeTrainer", "SizeTask"),
        ("zeroshot", "ZeroShotTrainer", "ZeroShotTask"),
    )
}


def canonical_class_path(class_path: str) -> str:
    """Today's name of a (possibly renamed) class path."""
    return CLASS_PATH_ALIASES.get(class_path, class_path)


def shipped_recipes() -> dict[str, Path]:
    """Every recipe in ``baselines/``, by name (file stem)."""
    folder = shipped_dir("baselines")
    return {p.stem: p for p in sorted(folder.glob("*.yaml"))} if folder.is_dir() else {}


def recipe_path(config: str | Path) -> Path:
    """A ``--config`` value (path or shipped recipe name) to an existing file."""
    path = Path(config).expanduser()
    if path.is_file():
        return path
    recipes = shipped_recipes()
    name = path.stem if path.suffix in (".yaml", ".yml") else str(config)
    if name in recipes and path.parent == Path("."):
        return recipes[name]
    close = difflib.get_close_matches(name, list(recipes), n=3, cutoff=0.4)
    hint = f" (shipped recipes: {', '.join(close or recipes)})" if recipes else ""
    raise UserError(f"--config {config}: no such file or shipped recipe{hint}")


def load_recipe(path: Path) -> dict[str, Any]:
    """Read and check one recipe file."""
    raw = read_yaml(path, "recipe")
    if not isinstance(raw, dict):
        raise UserError(f"{path}: a recipe is a YAML mapping with sections {', '.join(SECTIONS)}")
    unknown = [k for k in raw if k not in SECTIONS]
    if unknown:
        raise UserError(f"{path}: unknown section {unknown[0]!r} (known: {', '.join(SECTIONS)})")
    for section in ("model", "data"):
        part = raw.get(section)
        if not isinstance(part, dict) or not isinstance(part.get("class_path"), str):
            raise UserError(f"{path}: section '{section}' needs a 'class_path' (and optional 'init_args')")
        if not isinstance(part.setdefault("init_args", {}) or {}, dict):
            raise UserError(f"{path}: {section}.init_args must be a mapping")
        part["init_args"] = part["init_args"] or {}
    if not isinstance(raw.setdefault("trainer", {}) or {}, dict):
        raise UserError(f"{path}: section 'trainer' must be a mapping of Trainer arguments")
    raw["trainer"] = raw["trainer"] or {}
    raw.setdefault("name", Path(path).stem)
    return raw


def apply_override(config: dict[str, Any], assignment: str) -> None:
    """Apply one ``--set section.key=value`` (value read as YAML) in place."""
    if "=" not in assignment:
        raise UserError(f"--set {assignment}: expected KEY=VALUE, e.g. trainer.max_epochs=3")
    key, text = assignment.split("=", 1)
    parts = key.strip().split(".")
    if parts[0] not in SECTIONS:
        raise UserError(f"--set {assignment}: {parts[0]!r} is not a recipe section ({', '.join(SECTIONS)})")
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        value = text
    node = config
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise UserError(f"--set {assignment}: {part!r} is not a mapping in the recipe")
    node[parts[-1]] = value


def import_class(class_path: str, where: str):
    """``package.module.Class`` to the class; a ``UserError`` says which part is wrong.
    Renamed classes resolve through ``CLASS_PATH_ALIASES``."""
    class_path = canonical_class_path(class_path)
    module_name, _, cls_name = class_path.rpartition(".")
    if not module_name:
        raise UserError(f"{where}.class_path: {class_path!r} is not a dotted path module.Class")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise UserError(f"{where}.class_path: cannot import {module_name!r} ({exc})") from None
    try:
        return getattr(module, cls_name)
    except AttributeError:
        raise UserError(f"{where}.class_path: {module_name} has no {cls_name!r}") from None


def instantiate(section: dict[str, Any], where: str, base: type = object, **extra: Any):
    """Build ``class_path(**init_args, **extra)``, checking the class and the argument names.

    An init argument that is itself a mapping with a ``class_path`` is built first (as
    LightningCLI does), e.g. ``augment_config: {class_path: minbench.data.augment.AugmentConfig,
    init_args: {grayscale: 0.0}}``.
    """
    cls = import_class(section["class_path"], where)
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise UserError(f"{where}.class_path: {section['class_path']} is not a {base.__name__}")
    kwargs = copy.deepcopy(section.get("init_args") or {})
    for name, value in kwargs.items():
        if isinstance(value, dict) and isinstance(value.get("class_path"), str):
            kwargs[name] = instantiate(value, f"{where}.init_args.{name}")
    kwargs.update(extra)
    params = inspect.signature(cls.__init__).parameters
    if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        for name in kwargs:
            if name not in params:
                close = difflib.get_close_matches(name, [p for p in params if p != "self"], n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise UserError(f"{where}.init_args: {cls.__name__} takes no argument {name!r}{hint}")
    return cls(**kwargs)


# ---- a run's identity: its config without run bookkeeping ---------------------------

# Keys of a resolved run config that record the run, not the method: they never make two
# runs different entries (seeds merge into one entry; the recipe's path differs between
# checkouts; the role labels an entry, it does not change the method; devices/strategy give
# the same numbers, DDP equals single-process).
RUN_KEYS = ("name", "description", "role", "seeds", "recipe", "dataset", "command", "minbench_version", "logger",
            "task")
RUN_TRAINER_KEYS = ("devices", "strategy", "num_nodes")
# What a run found at run time for a recipe value it left open (the classifier a null
# segmentation ``classifier`` resolved to): part of the method's identity, so seeds of
# different classifiers never merge, but never a change from the recipe.
RESOLVED_KEY = "resolved"


def config_identity(config: dict) -> dict:
    """What makes a run config a method: ``RUN_KEYS`` (and hardware trainer keys) left out."""
    out = {k: v for k, v in config.items() if k not in RUN_KEYS}
    if isinstance(out.get("trainer"), dict):
        out["trainer"] = {k: v for k, v in out["trainer"].items() if k not in RUN_TRAINER_KEYS}
    return out


def config_hash(config: dict) -> str:
    """Hash of what makes a run config a method (``RUN_KEYS`` left out): 12 hex digits."""
    import hashlib

    text = json.dumps(config_identity(json.loads(json.dumps(config, default=str))), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


def flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    """A nested config as ``{"a.b.c": value}`` (an empty mapping is a value)."""
    if isinstance(obj, dict) and obj:
        out: dict[str, Any] = {}
        for k, v in obj.items():
            out.update(flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: obj}


def config_changes(config: dict | None) -> list[str]:
    """How a run's resolved config differs from its recipe file (``config["recipe"]``),
    e.g. ``["trainer.max_epochs=1"]``; run bookkeeping (``RUN_KEYS``) left out. Empty when
    it runs the recipe as written, or names no recipe file (a submission, a baseline)."""
    if not config or not config.get("recipe"):
        return []
    path = Path(str(config["recipe"]))
    if not path.is_file():  # recorded on another machine: the shipped recipe of that name
        path = shipped_recipes().get(path.stem)
        if path is None:
            return []
    try:
        recipe = load_recipe(path)
    except UserError:
        return []
    ran = flatten(config_identity(json.loads(json.dumps(config, default=str))))
    ran = {k: v for k, v in ran.items() if k != RESOLVED_KEY and not k.startswith(f"{RESOLVED_KEY}.")}
    base = flatten(config_identity(json.loads(json.dumps(recipe, default=str))))
    changes = [f"{k}={json.dumps(ran[k])}" for k in sorted(ran) if k not in base or base[k] != ran[k]]
    changes += [f"{k} unset" for k in sorted(base) if k not in ran]
    return changes
