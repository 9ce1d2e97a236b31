"""``minbench list tasks|recipes|cams|backbones|datasets``: what there is to run.

Every list comes from the registry that owns it: the task cards (``cards.py``), the
recipes in ``baselines/`` (each kind's default from ``pipelines/kinds.py``), the CAM
registry (``models/cam.py``), the backbone aliases and feature extractors
(``models/backbones.py``) and timm, and the datasets (the embedded sizes and the prepared
datasets under ``$MINBENCH_HOME/datasets``); ``LISTS`` names them for ``minbench list``.
Tasks, recipes and datasets import no deep-learning framework; the Python API
(``minbench.list_tasks()`` ...) returns the same.
"""

from __future__ import annotations

from typing import Any, Callable

from minbench.data.synth.options import EMBEDDED_SIZES
from minbench.registry import Registry


def list_tasks() -> list[dict[str, Any]]:
    """Every task: id, kind, title, headline metric, default recipe."""
    from minbench.cards import all_cards
    from minbench.pipelines.kinds import default_recipe

    return [{"id": c.id, "kind": c.kind, "headline": c.headline, "default_recipe": default_recipe(c.kind),
             "title": c.title} for c in all_cards().values()]


def list_recipes(task: str | None = None) -> list[dict[str, Any]]:
    """Every shipped recipe: name, task kind, default task, description (optionally only
    those that can run ``task``)."""
    from minbench.cards import all_cards, get_card
    from minbench.errors import UserError
    from minbench.io import read_yaml
    from minbench.pipelines.kinds import default_recipe
    from minbench.recipes import shipped_recipes

    cards = all_cards()
    out = []
    for name, path in shipped_recipes().items():
        try:
            raw = read_yaml(path, "recipe") or {}
        except UserError:  # a broken recipe is listed by `minbench run --config`, not here
            continue
        if not isinstance(raw, dict):
            continue
        recipe_task = raw.get("task")
        kind = cards[recipe_task].kind if recipe_task in cards else None
        if task is not None and kind != get_card(task).kind:
            continue
        out.append({"name": name, "kind": kind, "task": recipe_task,
                    "default": kind is not None and default_recipe(kind) == name,
                    "description": " ".join(str(raw.get("description") or "").split())})
    return out


def list_cams() -> list[str]:
    """The CAM methods ``--cam`` accepts."""
    from minbench.models.cam import method_names

    return method_names()


def list_backbones(pattern: str | None = None) -> list[str]:
    """The short backbone names recipes use (timm aliases, then the feature extractors
    without weights); with ``pattern`` (e.g. ``resnet*``), the matching timm model names too."""
    from minbench.models.backbones import ALIASES, HANDCRAFTED_BACKBONES as HANDCRAFTED

    names = [f"{k} ({v})" for k, v in ALIASES.items()] + [f"{k} ({HANDCRAFTED.info(k)['description']})"
                                                          for k in HANDCRAFTED]
    if pattern:
        import timm

        names += timm.list_models(pattern)
    return names


def list_datasets() -> list[dict[str, Any]]:
    """The embedded sizes (generated on first use) and every prepared dataset under
    ``$MINBENCH_HOME/datasets`` with its name, version, samples and unavailable tasks."""
    from minbench.data.manifest import read_info
    from minbench.errors import UserError
    from minbench.paths import cache_dir

    out: list[dict[str, Any]] = [{"name": f"synth-{s}", "kind": "embedded", "samples": None,
                                  "note": f"`minbench data generate --size {s}`"
                                  + (" (the default)" if s == "small" else ""), "path": ""}
                                 for s in EMBEDDED_SIZES]
    root = cache_dir() / "datasets"
    for info_path in sorted(root.glob("*/dataset.json")) if root.is_dir() else []:
        try:
            info = read_info(info_path.parent)
        except UserError:
            continue
        missing = info.unavailable_tasks
        out.append({"name": f"{info.name} {info.version}".strip(), "kind": "prepared",
                    "samples": info.n_samples,
                    "note": f"unavailable: {', '.join(missing)}" if missing else "", "path": str(info_path.parent)})
    return out


#: ``minbench list WHAT`` -> its rows; each takes the filters ``task`` (recipes) and
#: ``pattern`` (backbones) and ignores the other
LISTS: Registry[Callable[..., list[dict[str, Any]]]] = Registry("list")
LISTS.add("tasks", lambda task=None, pattern=None: list_tasks())
LISTS.add("recipes", lambda task=None, pattern=None: list_recipes(task))
LISTS.add("cams", lambda task=None, pattern=None: [{"name": n} for n in list_cams()])
LISTS.add("backbones", lambda task=None, pattern=None: [{"name": n} for n in list_backbones(pattern)])
LISTS.add("datasets", lambda task=None, pattern=None: list_datasets())


def list_rows(what: str, *, task: str | None = None, pattern: str | None = None) -> list[dict[str, Any]]:
    """The rows of ``minbench list WHAT`` (one of ``LISTS``): dicts of one shape per list."""
    return LISTS.get(what, what=f"WHAT {what!r}")(task=task, pattern=pattern)
