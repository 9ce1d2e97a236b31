"""Numbers that were not scored here: a paper's (``add_published``, ``parse_metrics``), and
your entries copied into the shipped boards (``publish``)."""

from __future__ import annotations

import json
import math
import re
from decimal import Decimal
from pathlib import Path

from minbench.cards import TaskCard, all_cards, get_card, is_fraction_name
from minbench.errors import UserError
from minbench.scoring.leaderboard.paths import (board_path, default_leaderboard_dir, folder_key, samples_folder,
                                                shipped_board_dir)
from minbench.scoring.leaderboard.schema import new_board, new_entry
from minbench.scoring.leaderboard.store import load_boards, locked_add, locked_update, replace_entry


def parse_metrics(text: str, card: TaskCard | None = None) -> dict[str, float]:
    """``"top1=0.66,top5=81%"`` to ``{"top1": 0.66, "top5": 0.81}`` (a ``%`` divides by 100
    unless the metric's unit is ``%``); fractions must lie in [0, 1]."""
    specs = {m.name: m for m in card.metrics} if card else {}
    out: dict[str, float] = {}
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        if "=" not in part:
            raise UserError(f"--metrics {part!r}: expected NAME=VALUE")
        key, raw = (s.strip() for s in part.split("=", 1))
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", key):
            raise UserError(f"--metrics {part!r}: {key!r} is not a metric name")
        if key in out:
            raise UserError(f"--metrics: {key} given twice")
        percent = raw.endswith("%")
        try:
            value = float(raw[:-1] if percent else raw)
        except ValueError:
            raise UserError(f"--metrics {part!r}: {raw!r} is not a number") from None
        if not math.isfinite(value):
            raise UserError(f"--metrics {part!r}: not a finite number")
        spec = specs.get(key)
        if percent and not (spec and spec.unit == "%"):
            value = float(Decimal(raw[:-1].strip()) / 100)  # 35.6% -> 0.356, not 0.35600000000000004
        fraction = card.is_fraction(key) if card else is_fraction_name(key)
        if fraction and not 0.0 <= value <= 1.0:
            raise UserError(f"--metrics {part!r}: {key} is a fraction in [0, 1] (write 0.66 or 66%)")
        out[key] = value
    if not out:
        raise UserError("--metrics: give at least one NAME=VALUE")
    return out


def add_published(task_id: str, *, name: str, metrics: dict[str, float], citation: str, method: str = "",
                  dataset_name: str = "mineralimage5k", dataset_version: str = "published",
                  reference: bool = False, title: str | None = None, n_samples: int | None = None,
                  url: str | None = None, notes: str | None = None, date: str | None = None,
                  leaderboard_dir: str | Path | None = None, path: str | Path | None = None) -> Path:
    """Record a paper's numbers (source ``published``) with their citation.

    Without ``reference`` the numbers are for task ``task_id`` on the paper's copy of
    ``dataset_name``: metric names must be the card's; the board is
    ``<task>--<dataset>.json``. With ``reference`` they come from another dataset and
    protocol: any metric names; the board is ``<dataset>.json``, shown beside every task
    of ``task_id``'s kind and never ranked against them.
    """
    from minbench.scoring.score import now_utc

    card = get_card(task_id)
    if not (citation or "").strip():
        raise UserError("--citation: published numbers need their source")
    if not str(name).strip():
        raise UserError("--name: empty")
    dataset = {"name": dataset_name, "version": dataset_version, "source": "published", "fingerprint": None}
    fresh = _reference_board(card, dataset, metrics, title) if reference else _published_board(card, dataset,
                                                                                               metrics)
    extra = {k: v for k, v in {"url": url, "notes": notes}.items() if v}
    entry = new_entry(name=str(name).strip(), method=method or "", source="published", metrics=dict(metrics),
                      ci={}, n_samples=n_samples, date=date or now_utc(), code_version=None, config=None,
                      seeds=[], citation=citation.strip(), **extra)
    target = board_path(task_id, dataset, reference=reference, leaderboard_dir=leaderboard_dir, path=path)
    return locked_add(target, fresh, entry)


def _reference_board(card: TaskCard, dataset: dict, metrics: dict[str, float], title: str | None) -> dict:
    """A reference board of ``card``'s kind whose columns are ``metrics`` (a name the kind's
    cards know takes their kind, unit and direction)."""
    by_name = {m.name: m for c in all_cards().values() if c.kind == card.kind for m in c.metrics}
    columns = [{"name": k, "kind": by_name[k].kind if k in by_name else None,
                "unit": by_name[k].unit if k in by_name else "",
                "higher_is_better": by_name[k].higher_is_better if k in by_name else True} for k in metrics]
    fresh = new_board(None, dataset, reference=True, kind=card.kind, title=title)
    fresh["metrics"] = columns
    fresh["headline"] = card.headline if card.headline in metrics else next(iter(metrics))
    return fresh


def _published_board(card: TaskCard, dataset: dict, metrics: dict[str, float]) -> dict:
    unknown = [k for k in metrics if k not in {m.name for m in card.metrics}]
    if unknown:
        raise UserError(f"--metrics: {', '.join(unknown)} not metrics of task {card.id} "
                        f"({', '.join(m.name for m in card.metrics)}); numbers of another protocol "
                        "go on a reference board (--reference --dataset NAME)")
    return new_board(card, dataset)


def publish(task_id: str, name: str, *, source_dir: str | Path | None = None,
            dest_dir: str | Path | None = None) -> Path:
    """Copy entry ``name`` of ``task_id`` from your boards (``source_dir``, default
    ``default_leaderboard_dir()``) with its per-sample file into the shipped boards
    (``dest_dir``, default ``shipped_board_dir()``), replacing an entry of that name there."""
    from minbench.paths import PACKAGE_DIR
    from minbench.scoring.samples import sha256

    get_card(task_id)
    src = Path(source_dir or default_leaderboard_dir())
    dest = Path(dest_dir or shipped_board_dir())
    if folder_key(src) == folder_key(dest):
        raise UserError(f"publish: {src} is already the shipped folder")
    if folder_key(dest).is_relative_to(folder_key(PACKAGE_DIR)):
        raise UserError(f"publish: {dest} is the installed package's read-only copy; publish from a checkout")
    found = [(p, b, e) for p, b in load_boards([src]) if b["task"] == task_id and not b["reference"]
             for e in b["entries"] if e["name"] == name]
    if not found:
        raise UserError(f"publish: no entry {name!r} for task {task_id} in {src}")
    if len(found) > 1:
        raise UserError(f"publish: entry {name!r} of {task_id} is on {len(found)} boards "
                        f"({', '.join(p.name for p, _, _ in found)}); pass --from with one of them only")
    path, board, entry = found[0]
    entry = json.loads(json.dumps(entry))
    data = None
    if entry.get("samples"):
        data = (path.parent / entry["samples"]["file"]).read_bytes()
        if sha256(data) != entry["samples"]["sha256"]:
            raise UserError(f"publish: {path.parent / entry['samples']['file']}: per-sample file changed since the "
                            "board was written; re-run or re-score the entry first")
    target = dest / path.name

    def update(b):
        write = {}
        if data is not None:
            rel = f"{samples_folder(target).name}/{Path(entry['samples']['file']).name}"
            entry["samples"]["file"] = rel
            write[rel] = data
        b, drop = replace_entry(b, entry)
        return b, write, drop

    return locked_update(target, {**board, "entries": []}, update)
