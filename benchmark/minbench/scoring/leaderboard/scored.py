"""Scored entries: a ``ScoreResult`` of a run or a submission recorded on its board, with
its per-sample results beside it (``merge`` decides where it goes, ``store`` writes it)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from minbench.cards import TaskCard, get_card
from minbench.errors import UserError
from minbench.recipes import config_changes, config_hash
from minbench.scoring.leaderboard.merge import EntryRecord, entry_name, joins, merge_entry
from minbench.scoring.leaderboard.paths import board_path
from minbench.scoring.leaderboard.schema import ROLES, new_board
from minbench.scoring.leaderboard.store import attach_samples, load_board, locked_update


def add_entry(task_id: str, result, *, name: str, method: str, source: str, config: dict | None = None,
              seed: int | None = None, leaderboard_dir: str | Path | None = None,
              path: str | Path | None = None, data_dir: str | Path | None = None, task_data=None,
              role: str | None = None) -> Path:
    """Record a ``ScoreResult`` on its task's leaderboard; returns the board's path.

    ``source``: ``run`` (a ``minbench run`` made it; pass its resolved ``config`` and
    ``seed``) or ``submission``; ``role``: ``method`` (default) or ``reference`` (a
    reference baseline, labelled so on the board; ranked and compared alike). The board is
    ``<dir>/<task>--<dataset>-<fp8>.json`` (``dir``: ``leaderboard_dir``, else
    ``default_leaderboard_dir()``), or ``path`` when given (refused if it holds another dataset).

    One entry per (name, resolved config): a run's seed joins the entry of its recipe and
    config (the same seed replaces that seed only; mean, std and the interval are over its
    seeds); a run whose config differs from its recipe file (``config_changes``) is its own
    entry ``<name>*<config hash 6>``, marked ``modified``. A submission replaces an entry of
    its name (``merge.merge_entry``). The per-sample results (``result.table``) go to a file
    beside the board, written with it. ``data_dir``/``task_data``: the dataset, to add the
    board's floor rows when it has none yet.
    """
    from minbench.scoring import samples as S

    record = record_of(task_id, result, name=name, method=method, source=source, config=config, seed=seed,
                       role=role)
    card = get_card(task_id)
    dataset = {k: result.dataset.get(k) for k in ("name", "version", "source", "fingerprint")}
    new_samples = None
    if getattr(result, "table", None) is not None and result.per_sample is not None:
        new_samples = S.from_table(S.family_of(card.kind), result.per_sample["sample_id"], result.table,
                                   record.seed)
    target = board_path(task_id, dataset, leaderboard_dir=leaderboard_dir, path=path)
    fresh = new_board(card, dataset)
    if task_data is not None or data_dir is not None:
        fresh["floors"] = _floors_if_missing(target, card, dataset, task_data, data_dir)
    name = entry_name(record)

    def update(board):
        old = next((e for e in board["entries"] if e["name"] == name), None)
        board = merge_entry(board, record)
        entry = next(e for e in board["entries"] if e["name"] == name)
        write, drop = attach_samples(target, entry, new_samples, old, joins(old, record), card, record.ci)
        return board, write, drop

    return locked_update(target, fresh, update)


def record_of(task_id: str, result, *, name: str, method: str, source: str, config: dict | None = None,
              seed: int | None = None, role: str | None = None) -> EntryRecord:
    """The board record of a ``ScoreResult``: its metrics, and for a run with its resolved
    ``config`` the config's identity and changes from its recipe file; a ``UserError`` for a
    request that cannot go on a board."""
    if source not in ("run", "submission"):
        raise UserError(f"source {source!r}: scored entries come from a 'run' or a 'submission' "
                        "(published numbers: `minbench leaderboard add-published`)")
    if result.task_id != task_id:
        raise UserError(f"the result is for task {result.task_id}, not {task_id}")
    if not str(name).strip():
        raise UserError("--name: empty (give the entry a name)")
    role = role or "method"
    if role not in ROLES:
        raise UserError(f"role {role!r} is not one of {', '.join(ROLES)}")
    card = get_card(task_id)
    if not result.dataset.get("fingerprint"):
        raise UserError(f"dataset {result.dataset.get('name')}: no fingerprint; cannot rank its scores")
    config = _jsonable(config)
    changes, chash = [], None
    if source == "run" and config is not None:
        changes, chash = config_changes(config), config_hash(config)
    else:
        seed = None  # a submission is one set of predictions: re-scoring its name replaces it
    return EntryRecord(
        name=str(name).strip(), method=method or "", source=source, role=role, seed=seed,
        metrics={k: (float(v) if v is not None and math.isfinite(v) else None) for k, v in result.metrics.items()},
        metric_names=tuple(m.name for m in card.metrics), ci=result.ci, n_samples=int(result.n_samples),
        n_answered=int(result.n_answered), date=result.scored_at, code_version=result.code_version,
        config=config, config_hash=chash, modified=changes, submission_sha256=result.submission.get("sha256"),
        task_version=result.task_version, image_fingerprint=result.dataset.get("image_fingerprint"))


def _floors_if_missing(target: Path, card: TaskCard, dataset: dict, task_data, data_dir) -> list[dict]:
    """The floor rows of the dataset, unless the board at ``target`` has them already for
    every metric of the card (a new card version may add metrics)."""
    from minbench.scoring.floors import compute_floors
    from minbench.scoring.score import load_task_data

    try:
        floors = load_board(target).get("floors") if target.exists() else None
        if floors and all(m.name in f["metrics"] for f in floors for m in card.metrics):
            return []
    except UserError:
        return []  # the locked update reports the broken board
    data = task_data if task_data is not None else load_task_data(card.id, data_dir)
    if data.info.identity()["fingerprint"] != dataset.get("fingerprint"):
        return []
    return compute_floors(data)


def _jsonable(config: Any) -> dict | None:
    if config is None:
        return None
    try:
        return json.loads(json.dumps(config, default=str))
    except (TypeError, ValueError):
        raise UserError("config: not representable as JSON") from None
