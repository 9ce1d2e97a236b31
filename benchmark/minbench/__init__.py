"""minbench: a multi-task benchmark suite for recognising minerals in photographs.

The Python API (``minbench.api``, imported lazily so ``import minbench`` stays light)::

    task = minbench.get_task("fewshot-10")
    dm = task.datamodule(image_size=64)       # the shared data module
    result = task.score("predictions.csv")    # the scorer of `minbench score`
"""

from __future__ import annotations

from minbench._version import __version__

__all__ = ["__version__", "Task", "get_task", "compare", "list_tasks", "list_recipes", "list_cams", "list_datasets",
           "load_leaderboard"]

_API = {"Task", "get_task", "compare", "list_tasks", "list_recipes", "list_cams", "list_datasets",
        "load_leaderboard"}


def __getattr__(name: str):
    if name in _API:
        from minbench import api

        return getattr(api, name)
    raise AttributeError(f"module 'minbench' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | _API)
