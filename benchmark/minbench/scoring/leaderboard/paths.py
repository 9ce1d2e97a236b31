"""Where boards live and what their files are called: yours (the write folder) and the
shipped ones, one file per task and dataset, per-sample files in a folder beside it."""

from __future__ import annotations

import os
import re
from pathlib import Path

from minbench.paths import cache_dir, shipped_dir

ENV_DIR = "MINBENCH_LEADERBOARDS"


def default_leaderboard_dir() -> Path:
    """Where new entries go: ``$MINBENCH_LEADERBOARDS``, else ``$MINBENCH_HOME/leaderboards``
    (``~/.cache/minbench/leaderboards``). Never the shipped ``leaderboards/``: those change
    only on purpose (``--leaderboard-dir leaderboards`` or ``minbench leaderboard publish``)."""
    env = os.environ.get(ENV_DIR)
    if env:
        return Path(env).expanduser()
    return cache_dir() / "leaderboards"


def shipped_board_dir() -> Path:
    """The shipped boards (the repository's ``leaderboards/``, or the wheel's copy)."""
    return shipped_dir("leaderboards")


def folder_key(d: Path) -> Path:
    """A folder as compared for sameness: resolved when it exists."""
    return d.resolve() if d.exists() else d


def is_shipped(path: Path) -> bool:
    """Whether a board file (or folder) is one of the shipped boards."""
    path = Path(path)
    folder = path if path.is_dir() else path.parent
    return folder_key(folder) == folder_key(shipped_board_dir())


def read_dirs() -> list[Path]:
    """Folders ``minbench leaderboard`` shows: yours (the write folder) and the shipped boards."""
    dirs, seen = [], set()
    for d in (default_leaderboard_dir(), shipped_board_dir()):
        if folder_key(d) not in seen:
            seen.add(folder_key(d))
            dirs.append(d)
    return dirs


def _slug(text: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", text.strip()).strip("-.").lower()
    return slug or "dataset"


def board_filename(task_id: str | None, dataset: dict, reference: bool = False) -> str:
    """``<task>--<dataset>-<fingerprint 8>.json`` (scored), ``<task>--<dataset>.json``
    (published), ``<dataset>.json`` (reference)."""
    if reference:
        return f"{_slug(dataset['name'])}.json"
    fp = dataset.get("fingerprint")
    tail = f"-{fp.split(':', 1)[-1][:8]}" if fp else ""
    return f"{task_id}--{_slug(dataset['name'])}{tail}.json"


def board_path(task_id: str | None, dataset: dict, *, reference: bool = False,
               leaderboard_dir: str | Path | None = None, path: str | Path | None = None) -> Path:
    """The board file an entry goes to: ``path`` when given, else ``board_filename`` in
    ``leaderboard_dir`` (default ``default_leaderboard_dir()``)."""
    if path:
        return Path(path)
    return Path(leaderboard_dir or default_leaderboard_dir()) / board_filename(task_id, dataset, reference)


def samples_folder(board_path: Path) -> Path:
    """``<board stem>.samples/`` beside the board."""
    board_path = Path(board_path)
    return board_path.with_name(f"{board_path.stem}.samples")
