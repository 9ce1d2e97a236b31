"""The board schema (``leaderboards/SCHEMA.md``): new boards and entries, validation on
read (a ``UserError`` naming the file, field and problem) and the in-memory migration of
older schemas."""

from __future__ import annotations

import math
import uuid
from typing import Any

from minbench.cards import KINDS, TaskCard
from minbench.errors import UserError
from minbench.recipes import config_hash
from minbench.scoring.seeds import summarise_metrics

SCHEMA_ID = "minbench-leaderboard/2"
OLD_SCHEMAS = ("minbench-leaderboard/1",)  # read and migrated in memory, never rewritten unasked
SOURCES = ("run", "submission", "published")
#: an entry's role: a ``method``, or a ``reference`` baseline (what one simple cue alone
#: solves, e.g. colour only), ranked and compared like a method and labelled as a reference
ROLES = ("method", "reference")


# ---- new boards and entries -----------------------------------------------------------

def metric_columns(card: TaskCard) -> list[dict]:
    """A card's metrics as a board's ``metrics`` columns."""
    return [{"name": m.name, "kind": m.kind, "unit": m.unit, "higher_is_better": m.higher_is_better}
            for m in card.metrics]


def new_board(card: TaskCard | None, dataset: dict, *, reference: bool = False, kind: str | None = None,
              title: str | None = None) -> dict:
    """An empty board for ``card`` on ``dataset`` (or a reference board of ``kind``)."""
    if reference:
        return {"schema": SCHEMA_ID, "task": None, "kind": kind, "reference": True,
                "title": title or dataset["name"], "dataset": dataset, "headline": None,
                "metrics": [], "entries": [], "floors": []}
    return {"schema": SCHEMA_ID, "task": card.id, "kind": card.kind, "reference": False, "title": card.title,
            "dataset": dataset, "headline": card.headline, "metrics": metric_columns(card), "entries": [],
            "floors": []}


def seed_record(seed, metrics, date, code_version, n_answered, sha, image_fingerprint=None) -> dict:
    """One seed of an entry (``seeds[]``): its metrics and where they came from (the images'
    fingerprint it was scored on, when known: the board keys on the truth fingerprint)."""
    record = {"seed": seed, "metrics": dict(metrics), "date": date, "code_version": code_version,
              "n_answered": n_answered, "submission_sha256": sha}
    if image_fingerprint:
        record["image_fingerprint"] = image_fingerprint
    return record


def new_entry(*, name: str, method: str, source: str, metrics: dict, ci: dict, n_samples: int | None,
              date: str, code_version: str | None, config: dict | None, seeds: list[dict],
              citation: str | None = None, role: str = "method", **extra) -> dict:
    """An entry with a fresh id; ``std`` over ``seeds`` (metrics with a spread only)."""
    spread = summarise_metrics([r["metrics"] for r in seeds], names=list(metrics))
    return {"id": uuid.uuid4().hex[:12], "name": name, "method": method, "role": role, "source": source,
            "metrics": metrics, "ci": ci, "n_samples": n_samples, "date": date, "code_version": code_version,
            "config": config, "seeds": seeds, "n_seeds": len(seeds),
            "std": {k: s.std for k, s in spread.items() if s.std is not None}, "config_hash": None,
            "modified": None, "samples": None, "citation": citation, **extra}


def same_dataset(a: dict, b: dict) -> bool:
    """Two boards' datasets are one: same name, version and fingerprint."""
    return (a.get("name"), a.get("version"), a.get("fingerprint")) == (b.get("name"), b.get("version"),
                                                                       b.get("fingerprint"))


def describe_dataset(ds: dict) -> str:
    """A dataset as messages name it: name, version and fingerprint prefix."""
    fp = ds.get("fingerprint")
    return f"{ds.get('name')} {ds.get('version')}" + (f" ({fp[:20]}…)" if fp else " (published)")


# ---- validation -----------------------------------------------------------------------

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

    def numbers(self, values: dict, at: str, names: list[str]) -> None:
        """A ``metric -> number or null`` mapping of this board's metrics (seeds, floors)."""
        for k, v in values.items():
            if k not in names or (v is not None and not _is_num(v)):
                self.fail(f"{at}.{k}", f"not a metric of this board or not a number ({v!r})")


def validate_board(board: Any, where: str = "leaderboard") -> dict:
    """Check a board against the schema; a ``UserError`` names the file, field and problem."""
    c = _Checker(where)
    if not isinstance(board, dict):
        c.fail("top level", "expected a JSON object")
    if board.get("schema") in OLD_SCHEMAS:
        board = migrate(board)
    if board.get("schema") != SCHEMA_ID:
        c.fail("schema", f"expected {SCHEMA_ID!r}, got {board.get('schema')!r}")
    scored, names = _check_header(c, board)
    seen: set[str] = set()
    for i, e in enumerate(c.need(board, "entries", (list,), "board")):
        _check_entry(c, e, f"entries[{i}]", names, seen, scored)
    for i, f in enumerate(c.need(board, "floors", (list,), "board")):
        c.need(f, "name", (str,), f"floors[{i}]")
        c.need(f, "description", (str,), f"floors[{i}]")
        c.numbers(c.need(f, "metrics", (dict,), f"floors[{i}]"), f"floors[{i}].metrics", names)
    return board


def _check_header(c: _Checker, board: dict) -> tuple[bool, list[str]]:
    """Task, kind, dataset, metric columns and headline; returns whether the board is
    scored (on a known fingerprint, not a reference board) and its metric names."""
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
    names = []
    for i, m in enumerate(c.need(board, "metrics", (list,), "board")):
        at = f"metrics[{i}]"
        names.append(c.need(m, "name", (str,), at))
        c.need(m, "higher_is_better", (bool,), at)
        c.need(m, "unit", (str,), at)
    if len(set(names)) != len(names):
        c.fail("metrics", f"names repeat: {names}")
    headline = c.need(board, "headline", (str,), "board", nullable=reference and not names)
    if headline is not None and headline not in names:
        c.fail("headline", f"{headline!r} is not among the metrics {names}")
    return fp is not None and not reference, names


def _check_entry(c: _Checker, e: dict, at: str, names: list[str], seen: set[str], scored: bool) -> None:
    c.need(e, "id", (str,), at)
    name = c.need(e, "name", (str,), at)
    if not name.strip():
        c.fail(f"{at}.name", "empty")
    if name in seen:
        c.fail(f"{at}.name", f"{name!r} appears twice (names are unique on a board)")
    seen.add(name)
    c.need(e, "method", (str,), at)
    if e.get("role", "method") not in ROLES:
        c.fail(f"{at}.role", f"{e['role']!r} is not one of {', '.join(ROLES)}")
    source = c.need(e, "source", (str,), at)
    if source not in SOURCES:
        c.fail(f"{at}.source", f"{source!r} is not one of {', '.join(SOURCES)}")
    if source != "published" and not scored:
        c.fail(f"{at}.source", f"a {source!r} entry needs a board scored on a known manifest fingerprint")
    if source == "published" and not (e.get("citation") or "").strip():
        c.fail(f"{at}.citation", "a published entry needs its citation")
    for k, v in c.need(e, "metrics", (dict,), at).items():
        if k not in names:
            c.fail(f"{at}.metrics.{k}", f"not a metric of this board ({', '.join(names)})")
        if v is not None and not _is_num(v):
            c.fail(f"{at}.metrics.{k}", f"expected a finite number or null, got {v!r}")
    for k, ci in (c.need(e, "ci", (dict,), at) or {}).items():
        _check_ci(c, ci, f"{at}.ci.{k}", k in names)
    n = c.need(e, "n_samples", (int,), at, nullable=True)
    if n is not None and n < 0:
        c.fail(f"{at}.n_samples", "negative")
    c.need(e, "date", (str,), at)
    c.need(e, "code_version", (str,), at, nullable=True)
    c.need(e, "config", (dict,), at, nullable=True)
    c.need(e, "citation", (str,), at, nullable=True)
    _check_seeds(c, e, at, names)


def _check_ci(c: _Checker, ci: dict, at: str, known: bool) -> None:
    if not known:
        c.fail(at, "not a metric of this board")
    for end in ("low", "high"):
        v = c.need(ci, end, (int, float), at, nullable=True)
        if v is not None and not _is_num(v):
            c.fail(f"{at}.{end}", f"expected a finite number, got {v!r}")
    level = c.need(ci, "level", (int, float), at)
    if not 0 < level < 1:
        c.fail(f"{at}.level", f"expected a level in (0, 1), got {level}")
    if ci["low"] is not None and ci["high"] is not None and ci["low"] > ci["high"]:
        c.fail(at, "low is above high")


def _check_seeds(c: _Checker, e: dict, at: str, names: list[str]) -> None:
    """Per-seed records, their count and summary, the config identity, the per-sample file."""
    for j, rec in enumerate(c.need(e, "seeds", (list,), at)):
        c.need(rec, "seed", (int,), f"{at}.seeds[{j}]", nullable=True)
        c.numbers(c.need(rec, "metrics", (dict,), f"{at}.seeds[{j}]"), f"{at}.seeds[{j}].metrics", names)
    if c.need(e, "n_seeds", (int,), at) != len(e["seeds"]):
        c.fail(f"{at}.n_seeds", f"{e['n_seeds']} but {len(e['seeds'])} seeds are listed")
    c.need(e, "std", (dict,), at)
    c.need(e, "config_hash", (str,), at, nullable=True)
    c.need(e, "modified", (list,), at, nullable=True)
    samples = c.need(e, "samples", (dict,), at, nullable=True)
    if samples is not None:
        c.need(samples, "file", (str,), f"{at}.samples")
        c.need(samples, "sha256", (str,), f"{at}.samples")
        c.need(samples, "seeds", (list,), f"{at}.samples")


# ---- older schemas --------------------------------------------------------------------

def migrate(board: dict) -> dict:
    """A ``minbench-leaderboard/1`` board in the current schema (in memory): its one stored
    seed becomes a one-seed entry without a per-sample file."""
    board = {**board, "schema": SCHEMA_ID, "floors": list(board.get("floors") or [])}
    entries = []
    for e in board.get("entries") or []:
        if not isinstance(e, dict):
            entries.append(e)
            continue
        e = dict(e)
        seed = e.pop("seed", None)
        scored = e.get("source") != "published"
        e["seeds"] = [seed_record(seed, e.get("metrics") or {}, e.get("date"), e.get("code_version"),
                                  e.get("n_answered"), e.get("submission_sha256"))] if scored else []
        e["n_seeds"] = len(e["seeds"])
        e["std"] = {}
        config = e.get("config")
        e["config_hash"] = config_hash(config) if isinstance(config, dict) and scored else None
        e["modified"] = None  # not recorded by the old schema
        e["samples"] = None
        entries.append(e)
    board["entries"] = entries
    return board
