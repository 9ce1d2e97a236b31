"""Where things live: the cache folder, the embedded dataset, shipped cards and recipes."""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
_REPO_ROOT = PACKAGE_DIR.parents[1]
_SHIPPED = PACKAGE_DIR / "_shipped"

CACHE_ENV = "MINBENCH_HOME"


def cache_dir() -> Path:
    """Root of minbench's cache (``$MINBENCH_HOME``, else ``~/.cache/minbench``)."""
    root = os.environ.get(CACHE_ENV)
    return Path(root).expanduser() if root else Path.home() / ".cache" / "minbench"


def shipped_dir(name: str) -> Path:
    """A data folder of the project (``tasks``, ``baselines``, ``leaderboards``).

    In a checkout (editable install) it is the repository's own folder; in a wheel it is
    the copy the wheel carries.
    """
    in_repo = _REPO_ROOT / name
    if in_repo.is_dir() and (_REPO_ROOT / "pyproject.toml").is_file():
        return in_repo
    return _SHIPPED / name
