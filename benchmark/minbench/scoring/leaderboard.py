"""Leaderboard files: schema, validation on read, and the locked, atomic add.

One JSON file per task and dataset (schema: ``leaderboards/SCHEMA.md``). A board holds
the dataset it was scored on (name, version, manifest fingerprint) and its entries;
an entry scored on another fingerprint goes to that dataset's own file, never into
this one. Writers take ``minbench.io.file_lock`` on the file, re-read it under the lock
and replace it atomically, so two scorers at once both land and a failure leaves the
file as it was.

Three kinds of board:

- scored (``dataset.fingerprint`` set): entries from ``minbench score`` (source
  ``submission``) and from runs (source ``run``), ranked on the task's headline;
- published (``fingerprint`` null): numbers copied from a paper for a minbench task, on
  the paper's copy of the data; ranked among themselves, never against scored boards;
- reference (``reference: true``, ``task`` null): published numbers of another dataset
  and protocol (e.g. MineralNet's Mindat photos), shown beside the tasks of the same
  ``kind``, never ranked.
"""

from __future__ import annotations

import json
import math
import os
import re
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

from minbench.cards import KINDS, TaskCard, all_cards, get_card, is_fraction_name
from minbench.errors import UserError
from minbench.io import file_lock, write_json_atomic
from minbench.paths import PACKAGE_DIR, cache_dir, shipped_dir

SCHEMA_ID = "minbench-leaderboard/1"
SOURCES = ("run", "submission", "published")
ENV_DIR = "MINBENCH_LEADERBOARDS"


# ---- where boards live ----------------------------------------------------------------

def default_leaderboard_dir() -> Path:
    """Where new entries go: ``$MINBENCH_LEADERBOARDS``, else the repository's
    ``leaderboards/``, else (installed from a wheel: read-only package data)
    ``<cache>/leaderboards``."""
    env = os.environ.get(ENV_DIR)
    if env:
        return Path(env).expanduser()
    shipped = shipped_dir("leaderboards")
    in_package = shipped.resolve().is_relative_to((PACKAGE_DIR / "_shipped").resolve())
    if shipped.is_dir() and not in_package and os.access(shipped, os.W_OK):
        return shipped
    return cache_dir() / "leaderboards"


def read_dirs() -> list[Path]:
    """Folders ``minbench leaderboard`` shows: the write folder and the shipped boards."""
    dirs, seen = [], set()
    for d in (default_leaderboard_dir(), shipped_dir("leaderboards")):
        key = d.resolve() if d.exists() else d
        if key not in seen:
            seen.add(key)
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


# ---- schema ---------------------------------------------------------------------------

def metric_columns(card: TaskCard) -> list[dict]:
    return [{"name": m.name, "kind": m.kind, "unit": m.unit, "higher_is_better": m.higher_is_better}
            for m in card.metrics]


def new_board(card: TaskCard | None, dataset: dict, *, reference: bool = False, kind: str | None = None,
              title: str | None = None) -> dict:
    """An empty board for ``card`` on ``dataset`` (or a reference board of ``kind``)."""
    if reference:
        return {"schema": SCHEMA_ID, "task": None, "kind": kind, "reference": True,
                "title": title or dataset["name"], "dataset": dataset, "headline": None,
                "metrics": [], "entries": []}
    return {"schema": SCHEMA_ID, "task": card.id, "kind": card.kind, "reference": False, "title": card.title,
            "dataset": dataset, "headline": card.headline, "metrics": metric_columns(card), "entries": []}


def _is_num(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


class _Checker:
    def __init__(self, where: str) -> None:
        self.where = where

    def fail(self, at: str, what: str) -> None:
        raise UserError(f"{self.where}: {at}: {what}")

    def need(self, obj: dict, key: str, types: tuple, at: str, nullable: bool = False) -> Any:
        if not isinstance(obj, dict) or key not in obj:
            self.fail(at, f"missing '{key}'")
        value = obj[key]
        if value is None and nullable:
            return None
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            names = "/".join(t.__name__ for t in types) + (" or null" if nullable else "")
            self.fail(f"{at}.{key}", f"expected {names}, got {value!r}"[:200])
        return value


def validate_board(board: Any, where: str = "leaderboard") -> dict:
    """Check a board against the schema; a ``UserError`` names the file, field and problem."""
    c = _Checker(where)
    if not isinstance(board, dict):
        c.fail("top level", "expected a JSON object")
    if board.get("schema") != SCHEMA_ID:
        c.fail("schema", f"expected {SCHEMA_ID!r}, got {board.get('schema')!r}")
    reference = c.need(board, "reference", (bool,), "board")
    task = c.need(board, "task", (str,), "board", nullable=reference)
    kind = c.need(board, "kind", (str,), "board")
    if kind not in KINDS:
        c.fail("kind", f"{kind!r} is not one of {', '.join(KINDS)}")
    if reference and task is not None:
        c.fail("task", "a reference board names no task (it is shown beside every task of its kind)")
    ds = c.need(board, "dataset", (dict,), "board")
    if not c.need(ds, "name", (str,), "dataset"):
        c.fail("dataset.name", "empty")
    c.need(ds, "version", (str,), "dataset")
    fp = c.need(ds, "fingerprint", (str,), "dataset", nullable=True)
    metrics = c.need(board, "metrics", (list,), "board")
    names = []
    for i, m in enumerate(metrics):
        at = f"metrics[{i}]"
        names.append(c.need(m, "name", (str,), at))
        c.need(m, "higher_is_better", (bool,), at)
        c.need(m, "unit", (str,), at)
    if len(set(names)) != len(names):
        c.fail("metrics", f"names repeat: {names}")
    headline = c.need(board, "headline", (str,), "board", nullable=reference and not names)
    if headline is not None and headline not in names:
        c.fail("headline", f"{headline!r} is not among the metrics {names}")
    entries = c.need(board, "entries", (list,), "board")
    seen = set()
    for i, e in enumerate(entries):
        at = f"entries[{i}]"
        c.need(e, "id", (str,), at)
        name = c.need(e, "name", (str,), at)
        if not name.strip():
            c.fail(f"{at}.name", "empty")
        if name in seen:
            c.fail(f"{at}.name", f"{name!r} appears twice (names are unique on a board)")
        seen.add(name)
        c.need(e, "method", (str,), at)
        source = c.need(e, "source", (str,), at)
        if source not in SOURCES:
            c.fail(f"{at}.source", f"{source!r} is not one of {', '.join(SOURCES)}")
        if source != "published" and (fp is None or reference):
            c.fail(f"{at}.source", f"a {source!r} entry needs a board scored on a known manifest fingerprint")
        if source == "published" and not (e.get("citation") or "").strip():
            c.fail(f"{at}.citation", "a published entry needs its citation")
        values = c.need(e, "metrics", (dict,), at)
        for k, v in values.items():
            if k not in names:
                c.fail(f"{at}.metrics.{k}", f"not a metric of this board ({', '.join(names)})")
            if v is not None and not _is_num(v):
                c.fail(f"{at}.metrics.{k}", f"expected a finite number or null, got {v!r}")
        for k, ci in (c.need(e, "ci", (dict,), at) or {}).items():
            if k not in names:
                c.fail(f"{at}.ci.{k}", "not a metric of this board")
            for end in ("low", "high"):
                v = c.need(ci, end, (int, float), f"{at}.ci.{k}", nullable=True)
                if v is not None and not _is_num(v):
                    c.fail(f"{at}.ci.{k}.{end}", f"expected a finite number, got {v!r}")
            level = c.need(ci, "level", (int, float), f"{at}.ci.{k}")
            if not 0 < level < 1:
                c.fail(f"{at}.ci.{k}.level", f"expected a level in (0, 1), got {level}")
            if ci["low"] is not None and ci["high"] is not None and ci["low"] > ci["high"]:
                c.fail(f"{at}.ci.{k}", "low is above high")
        n = c.need(e, "n_samples", (int,), at, nullable=True)
        if n is not None and n < 0:
            c.fail(f"{at}.n_samples", "negative")
        c.need(e, "date", (str,), at)
        c.need(e, "code_version", (str,), at, nullable=True)
        c.need(e, "config", (dict,), at, nullable=True)
        c.need(e, "seed", (int,), at, nullable=True)
        c.need(e, "citation", (str,), at, nullable=True)
    return board


def load_board(path: str | Path) -> dict:
    """Read and validate one board file."""
    path = Path(path)
    try:
        board = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{path}: no such leaderboard") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: not valid JSON ({exc})") from None
    return validate_board(board, where=str(path))


def load_boards(dirs: list[Path] | None = None) -> list[tuple[Path, dict]]:
    """Every board (``*.json``) in ``dirs`` (default: ``read_dirs()``), validated."""
    out = []
    for d in dirs if dirs is not None else read_dirs():
        if not d.is_dir():
            continue
        for path in sorted(d.glob("*.json")):
            out.append((path, load_board(path)))
    return out


# ---- adding entries -------------------------------------------------------------------

def _same_dataset(a: dict, b: dict) -> bool:
    return (a.get("name"), a.get("version"), a.get("fingerprint")) == (b.get("name"), b.get("version"),
                                                                       b.get("fingerprint"))


def _describe(ds: dict) -> str:
    fp = ds.get("fingerprint")
    return f"{ds.get('name')} {ds.get('version')}" + (f" ({fp[:20]}…)" if fp else " (published)")


def _locked_add(path: Path, fresh: dict, entry: dict) -> Path:
    """Add ``entry`` to the board at ``path`` (made from ``fresh`` when absent)."""
    path = Path(path)
    validate_board({**fresh, "entries": [entry]}, where=f"{path} (new entry)")
    with file_lock(path.with_name(f".{path.name}.lock")):
        board = load_board(path) if path.exists() else fresh
        if board.get("reference") != fresh.get("reference") or board.get("task") != fresh.get("task"):
            raise UserError(f"{path}: a board for {board.get('task') or 'reference ' + str(board.get('kind'))}, "
                            f"not for {fresh.get('task') or 'reference ' + str(fresh.get('kind'))}")
        if not _same_dataset(board["dataset"], fresh["dataset"]):
            raise UserError(f"{path}: holds results on {_describe(board['dataset'])}; this one is on "
                            f"{_describe(fresh['dataset'])}. Results on different datasets never share a "
                            f"leaderboard (its own file: {board_filename(fresh.get('task'), fresh['dataset'], fresh['reference'])})")
        if board["reference"]:  # reference boards grow their metric list with their entries
            known = {m["name"] for m in board["metrics"]}
            board["metrics"] += [m for m in fresh["metrics"] if m["name"] not in known]
            board["headline"] = board["headline"] or fresh["headline"]
        board["entries"] = [e for e in board["entries"] if e["name"] != entry["name"]] + [entry]
        validate_board(board, where=str(path))
        write_json_atomic(path, board)
    return path


def _entry(*, name: str, method: str, source: str, metrics: dict, ci: dict, n_samples: int | None,
           date: str, code_version: str | None, config: dict | None, seed: int | None,
           citation: str | None = None, **extra) -> dict:
    return {"id": uuid.uuid4().hex[:12], "name": name, "method": method, "source": source, "metrics": metrics,
            "ci": ci, "n_samples": n_samples, "date": date, "code_version": code_version, "config": config,
            "seed": seed, "citation": citation, **extra}


def add_entry(task_id: str, result, *, name: str, method: str, source: str, config: dict | None = None,
              seed: int | None = None, leaderboard_dir: str | Path | None = None,
              path: str | Path | None = None) -> Path:
    """Record a ``ScoreResult`` on its task's leaderboard; returns the board's path.

    ``source``: ``run`` (a ``minbench run`` made it; pass its resolved ``config`` and
    ``seed``) or ``submission``. The board is ``<dir>/<task>--<dataset>-<fp8>.json``
    (``dir``: ``leaderboard_dir``, else ``default_leaderboard_dir()``), or ``path`` when given
    (refused if it holds another dataset). An entry with the same ``name`` is replaced.
    """
    if source not in ("run", "submission"):
        raise UserError(f"source {source!r}: scored entries come from a 'run' or a 'submission' "
                        "(published numbers: `minbench leaderboard add-published`)")
    if result.task_id != task_id:
        raise UserError(f"the result is for task {result.task_id}, not {task_id}")
    if not str(name).strip():
        raise UserError("--name: empty (give the entry a name)")
    card = get_card(task_id)
    dataset = {k: result.dataset.get(k) for k in ("name", "version", "source", "fingerprint")}
    if not dataset.get("fingerprint"):
        raise UserError(f"dataset {dataset.get('name')}: no manifest fingerprint; cannot rank its scores")
    metrics = {k: (float(v) if v is not None and math.isfinite(v) else None) for k, v in result.metrics.items()}
    entry = _entry(name=str(name).strip(), method=method or "", source=source, metrics=metrics, ci=result.ci,
                   n_samples=int(result.n_samples), date=result.scored_at, code_version=result.code_version,
                   config=_jsonable(config), seed=seed, n_answered=int(result.n_answered),
                   submission_sha256=result.submission.get("sha256"), task_version=result.task_version)
    target = Path(path) if path else Path(leaderboard_dir or default_leaderboard_dir()) / board_filename(
        task_id, dataset)
    return _locked_add(target, new_board(card, dataset), entry)


def _jsonable(config: Any) -> dict | None:
    if config is None:
        return None
    try:
        return json.loads(json.dumps(config, default=str))
    except (TypeError, ValueError):
        raise UserError("config: not representable as JSON") from None


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
    if reference:
        by_name = {m.name: m for c in all_cards().values() if c.kind == card.kind for m in c.metrics}
        columns = [{"name": k, "kind": by_name[k].kind if k in by_name else None,
                    "unit": by_name[k].unit if k in by_name else "",
                    "higher_is_better": by_name[k].higher_is_better if k in by_name else True} for k in metrics]
        fresh = new_board(None, dataset, reference=True, kind=card.kind, title=title)
        fresh["metrics"] = columns
        fresh["headline"] = card.headline if card.headline in metrics else next(iter(metrics))
    else:
        unknown = [k for k in metrics if k not in {m.name for m in card.metrics}]
        if unknown:
            raise UserError(f"--metrics: {', '.join(unknown)} not metrics of task {task_id} "
                            f"({', '.join(m.name for m in card.metrics)}); numbers of another protocol "
                            "go on a reference board (--reference --dataset NAME)")
        fresh = new_board(card, dataset)
    extra = {k: v for k, v in {"url": url, "notes": notes}.items() if v}
    entry = _entry(name=str(name).strip(), method=method or "", source="published", metrics=dict(metrics), ci={},
                   n_samples=n_samples, date=date or now_utc(), code_version=None, config=None, seed=None,
                   citation=citation.strip(), **extra)
    target = Path(path) if path else Path(leaderboard_dir or default_leaderboard_dir()) / board_filename(
        task_id, dataset, reference)
    return _locked_add(target, fresh, entry)
