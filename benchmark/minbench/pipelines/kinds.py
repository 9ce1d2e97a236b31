"""The task kinds ``minbench run`` has a pipeline for, and each kind's default recipe.

Each ``pipelines/<kind>.py`` registers its seed function with ``@PIPELINES.register(kind)``
(its optional hooks ``retired_options`` and ``preflight`` ride along as the entry's info, see
``pipelines/validate.py``); ``pipeline(kind)`` and ``pipeline_hooks(kind)`` import that module
on first use, so naming a kind costs nothing until it runs. The default recipes are a table here, read without
importing any framework (``minbench list`` shows them).
"""

from __future__ import annotations

import importlib
from typing import Any, Callable

from minbench.errors import UserError
from minbench.registry import Registry

#: task kind -> the stem of its default recipe in ``baselines/`` (what ``minbench run --task T``
#: runs without ``--config``)
DEFAULT_RECIPES: dict[str, str] = {
    "classification": "fewshot-small-cnn",
    "segmentation": "segmentation-scorecam-grabcut",
    "size": "size-cube",
    "zeroshot": "zeroshot-minilm",
}

#: task kind -> its seed function ``run_seed(ctx: SeedContext) -> dict | None`` (contract: ``runner``)
PIPELINES: Registry[Callable[..., Any]] = Registry("task kind")


def default_recipe(kind: str) -> str | None:
    """The stem of a task kind's default recipe; None for a kind without one."""
    return DEFAULT_RECIPES.get(kind)


def pipeline(kind: str) -> Callable[..., Any]:
    """A task kind's seed function; a ``UserError`` when this version has no pipeline for the kind."""
    _load(kind)
    return PIPELINES.get(kind)


def pipeline_hooks(kind: str) -> dict[str, Any]:
    """A task kind's hooks for ``validate_run`` (``retired_options``, ``preflight``; those it has)."""
    _load(kind)
    return PIPELINES.info(kind)


def _load(kind: str) -> None:
    if kind not in PIPELINES:
        module = f"{__package__}.{kind}"
        try:
            importlib.import_module(module)  # registers the kind's seed function
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise
    if kind not in PIPELINES:
        raise UserError(f"`minbench run` has no pipeline for {kind} tasks in this version")
