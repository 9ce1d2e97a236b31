"""Check a resolved run before anything slow: every mistake found, one line each.

``minbench run`` calls ``validate_run`` after the recipe and the command line are merged
and before the dataset is generated, cached or any model is built. It checks:

- options a kind retired (the kind's ``retired_options(config)`` hook, e.g. the zero-shot
  ``text_source: descriptions`` that named unseen classes by test samples' text): one line
  each, naming what to use instead, also for an old recipe or a stored run (``--resume``);
- every ``model`` / ``data`` init argument (nested ``class_path`` objects too) against the
  target's ``__init__``: the name exists and the value fits the annotation;
- every ``trainer`` key against ``lightning.pytorch.Trainer``'s signature, and the keys
  minbench sets itself (``logger``, ``callbacks``, ``default_root_dir``);
- what would only fail at the end: ``data.init_args.limit`` cuts the test split the scorer
  needs whole;
- what needs a test row's truth before the submission exists (the sealed protocol,
  ``minbench.data.seal``): ``cam_target: true``;
- each kind's preflight: local weights present, the CAM method and its options known
  (``minbench.models.cam``'s registry), a given classifier checkpoint present, and the
  kind's own ``preflight(config)`` hook when it has one (e.g. zero-shot templates).

Signatures are read from source (``pipelines/signatures.py``), so the check imports no
deep-learning framework. Each mistake names where the value came from: the flag
(``--weights W``, ``--set trainer.max_epochs=abc``) or the recipe file and key.
"""

from __future__ import annotations

import difflib
import inspect
from pathlib import Path
from typing import Any

from minbench.cards import TaskCard
from minbench.errors import UserError

TRAINER_CLASS = "lightning.pytorch.Trainer"
#: trainer arguments minbench sets itself, and the flag to use instead
RESERVED_TRAINER_KEYS = {"logger": "--logger csv|wandb", "callbacks": None, "default_root_dir": "--out DIR"}
#: init arguments the pipelines pass themselves (a recipe need not give them)
INJECTED = {"model": {"task", "num_classes", "classes", "classifier", "image_size"},
            "data": {"data_dir", "task", "seed", "classes", "image_size", "augment"}}
LOGGERS = ("csv", "wandb")


class Problems:
    """Mistakes collected over the whole check; raised together as one ``UserError``."""

    def __init__(self, origins: dict[str, str], recipe: str):
        self.origins, self.recipe, self.lines = origins, recipe, []

    def where(self, key: str) -> str:
        """How ``key`` (dotted) was given: a flag, ``--set ...``, or the recipe's key."""
        parts = key.split(".")
        for n in range(len(parts), 0, -1):
            prefix = ".".join(parts[:n])
            if prefix in self.origins:
                return self.origins[prefix]
        return f"{self.recipe}: {key}"

    def add(self, key: str, message: str) -> None:
        line = f"{self.where(key)}: {message}"
        if line not in self.lines:
            self.lines.append(line)

    def raise_if_any(self) -> None:
        if self.lines:
            raise UserError("\n".join(self.lines))


def _params(class_path: str, where: str, problems: Problems, key: str):
    """``(params by name, accepts **kwargs, class name)`` of a class, from source when
    possible, else from the imported class; None when the class is not there."""
    from minbench.pipelines import signatures
    from minbench.recipes import import_class

    static = signatures.signature(class_path)
    name = class_path.rpartition(".")[2]
    if static is not None:
        params, _ = static
        return ({p.name: p for p in params if p.kind in ("positional", "keyword")},
                any(p.kind == "var_keyword" for p in params), name)
    try:
        cls = import_class(class_path, where)
    except UserError as exc:
        problems.add(key, str(exc).split(": ", 1)[-1])
        return None
    try:
        sig = inspect.signature(cls.__init__ if isinstance(cls, type) else cls)
    except (TypeError, ValueError):
        return {}, True, name
    params = {n: None for n, p in sig.parameters.items()
              if n != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)}
    return params, any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values()), getattr(cls, "__name__", name)


def _check_args(section: dict[str, Any], key: str, problems: Problems, injected: set[str] = frozenset(),
                skip: set[str] = frozenset()) -> None:
    from minbench.pipelines import signatures

    class_path = section.get("class_path")
    if not isinstance(class_path, str):
        problems.add(f"{key}.class_path", "needs a 'class_path' (module.Class)")
        return
    found = _params(class_path, key, problems, f"{key}.class_path")
    if found is None:
        return
    params, var_kw, cls_name = found
    args = section.get("init_args") or {}
    if not isinstance(args, dict):
        problems.add(f"{key}.init_args", "must be a mapping of argument: value")
        return
    for name, value in args.items():
        arg_key = f"{key}.init_args.{name}"
        if arg_key in skip:  # a retired option, already reported
            continue
        if name not in params:
            if var_kw or name in injected:
                continue
            problems.add(arg_key, _unknown(cls_name, name, params, problems.where(arg_key)))
            continue
        if isinstance(value, dict) and isinstance(value.get("class_path"), str):
            _check_args(value, arg_key, problems)
            continue
        param = params[name]
        if param is not None and signatures.matches(value, param.annotation, param.module) is False:
            problems.add(arg_key, f"{cls_name}'s {name} takes {param.annotation_text}, not {value!r}")


def _unknown(owner: str, name: str, params, origin: str) -> str:
    if origin.startswith("--weights"):
        return f"not used here: {owner} takes no weights"
    close = difflib.get_close_matches(name, list(params), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else \
        f" (it takes: {', '.join(params)})" if len(params) <= 16 else ""
    return f"{owner} takes no argument {name!r}{hint}"


def _check_trainer(trainer: Any, problems: Problems) -> None:
    from minbench.pipelines import signatures

    if not isinstance(trainer, dict):
        problems.add("trainer", "must be a mapping of lightning.pytorch.Trainer arguments")
        return
    found = signatures.signature("lightning.pytorch.trainer.trainer.Trainer") or signatures.signature(TRAINER_CLASS)
    params = {p.name: p for p in found[0]} if found else None
    for name, value in trainer.items():
        key = f"trainer.{name}"
        if name in RESERVED_TRAINER_KEYS:
            instead = RESERVED_TRAINER_KEYS[name]
            problems.add(key, "minbench sets this itself" + (f"; use {instead}" if instead else ""))
        elif params is not None and name not in params:
            problems.add(key, _unknown("lightning.pytorch.Trainer", name, params, problems.where(key)))
        elif params is not None and signatures.matches(value, params[name].annotation, params[name].module) is False:
            problems.add(key, f"Trainer's {name} takes {params[name].annotation_text}, not {value!r}")


def _check_limit(config: dict[str, Any], problems: Problems) -> None:
    limit = ((config.get("data") or {}).get("init_args") or {}).get("limit")
    if limit is None or (isinstance(limit, float) and limit == 1.0):
        return
    problems.add("data.init_args.limit", "a run is scored on the whole test split and limit would cut it "
                 "(the scorer would refuse the submission at the end); for a quicker trial lower "
                 "--max-epochs or data.init_args.image_size, or use a smaller dataset "
                 "(`minbench data generate --size tiny --out DIR`, then --data DIR)")


def _check_file(value: Any, key: str, problems: Problems, what: str) -> None:
    if value is None or value == "":
        return
    if not isinstance(value, str) or not Path(value).expanduser().is_file():
        problems.add(key, f"no such {what} file: {value}")


def _check_segmentation(config: dict[str, Any], problems: Problems) -> None:
    from minbench.models import cam as cams, cam_layers, masking
    from minbench.models.refine import REFINEMENTS

    args = (config.get("model") or {}).get("init_args") or {}
    registries = {"cam": tuple(cams.METHODS), "cam_target": cams.TARGETS, "threshold": masking.THRESHOLDS,
                  "upsample": masking.UPSAMPLING, "reshape": cam_layers.RESHAPES, "refine": REFINEMENTS, "tta": cams.TTA}
    for name, known in registries.items():
        value = args.get(name)
        if isinstance(value, str) and value not in known:  # another type: the signature check's
            close = difflib.get_close_matches(str(value), known, n=1, cutoff=0.5)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            problems.add(f"model.init_args.{name}", f"{value!r} is not one of {', '.join(known)}{hint}")
    if args.get("cam_target") == "true":  # the sealed protocol: a test photo's class is its truth
        from minbench.models.cam import CAM_TRUE_TARGET_REFUSED

        problems.add("model.init_args.cam_target", CAM_TRUE_TARGET_REFUSED)
    if args.get("threshold") in masking.THRESHOLDS and masking.is_tuned(args["threshold"]):
        if args.get("threshold_value") is not None:
            problems.add("model.init_args.threshold_value",
                         f"--threshold {args['threshold']} chooses its level on the validation part; give no value")
    elif args.get("threshold") in masking.THRESHOLDS:
        try:
            masking.check_threshold(args["threshold"], args.get("threshold_value"))
        except UserError as exc:
            problems.add("model.init_args.threshold_value", str(exc).split(": ", 1)[-1])
        except (TypeError, ValueError):
            pass  # a type mistake, reported by the signature check
    if args.get("refine", "none") in REFINEMENTS and isinstance(args.get("refine_args"), dict):
        from minbench.models.refine import check_refine

        try:
            check_refine(args.get("refine", "none"), args["refine_args"])
        except UserError as exc:
            key, _, why = str(exc).partition(": ")
            problems.add(key, why)
    if args.get("cam_scale") is not None:
        try:
            cams.cam_input_size(64, args["cam_scale"])
        except UserError as exc:
            problems.add("model.init_args.cam_scale", str(exc).split(": ", 1)[-1])
    top_k = args.get("top_k")
    if isinstance(top_k, int) and not isinstance(top_k, bool) and top_k < 1:
        problems.add("model.init_args.top_k", f"{top_k}: must be at least 1")
    _check_file(args.get("classifier"), "model.init_args.classifier", problems, "checkpoint")
    if config.get("classifier_weights") and args.get("classifier"):
        problems.add("classifier_weights", "a given --classifier is used as it is; --weights only applies "
                     "when the default classifier is trained")
    _check_file(config.get("classifier_weights"), "classifier_weights", problems, "weights")


def validate_run(config: dict[str, Any], card: TaskCard, origins: dict[str, str] | None = None,
                 hooks: dict[str, Any] | None = None) -> None:
    """Every check above; raises one ``UserError`` with a line per mistake. ``hooks``: the
    task kind's ``retired_options`` and ``preflight`` (``kinds.pipeline_hooks``), those it has."""
    hooks = hooks or {}
    problems = Problems(dict(origins or {}), str(config.get("recipe") or "recipe"))
    retired = hooks.get("retired_options")
    # dotted key -> why it went and what to use instead (None: covered by another key's line)
    retired = retired(config) if retired is not None else {}
    for key, message in retired.items():
        if message:
            problems.add(key, message)
    for section in ("model", "data"):
        part = config.get(section)
        if isinstance(part, dict):
            _check_args(part, section, problems, INJECTED[section], skip=set(retired))
    _check_trainer(config.get("trainer") or {}, problems)
    _check_limit(config, problems)
    logger = config.get("logger", "csv")
    if logger not in LOGGERS:
        problems.add("logger", f"{logger!r} is not one of {', '.join(LOGGERS)}")
    seeds = config.get("seeds")
    if not isinstance(seeds, list) or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0
                                              for s in seeds):
        problems.add("seeds", f"{seeds!r}: a list of non-negative integers")
    role = config.get("role")
    if role is not None:
        from minbench.scoring.leaderboard import ROLES

        if role not in ROLES:
            problems.add("role", f"{role!r} is not one of {', '.join(ROLES)}")
    weights = ((config.get("model") or {}).get("init_args") or {}).get("weights")
    if weights is not None:
        _check_file(weights, "model.init_args.weights", problems, "weights")
    if card.kind == "segmentation":
        _check_segmentation(config, problems)
    problems.raise_if_any()
    backbone = ((config.get("model") or {}).get("init_args") or {}).get("backbone")
    if isinstance(backbone, str):
        # A name timm does not know would otherwise fail only after the data is generated and
        # cached; this check imports timm (and torch), so it runs after the cheap ones.
        from minbench.models.backbones import resolve_name

        try:
            resolve_name(backbone)
        except UserError as exc:
            raise UserError(f"{problems.where('model.init_args.backbone')}: {exc}") from None
    preflight = hooks.get("preflight")
    if preflight is not None:
        preflight(config)
