"""Leaderboard files: schema, validation on read, and the locked, atomic add.

One JSON file per task and dataset (schema: ``leaderboards/SCHEMA.md``). A board holds
the dataset it was scored on (name, version, manifest fingerprint) and its entries;
an entry scored on another fingerprint goes to that dataset's own file, never into
this one. Writers take ``minbench.io.file_lock`` on the file, re-read it under the lock
and replace it atomically (per-sample files first, under new names), so two scorers at
once both land and a failure leaves the board and its files as they were.

An entry is one method: a run's seeds join the entry of its recipe and config (mean,
std, per-seed values; ``config_changes`` marks a config that differs from its recipe,
which then gets an entry of its own), and its per-sample results are kept beside the
board (``samples.py``) for paired comparisons and rank groups (``compare.py``). An entry's
``role`` (``ROLES``) says whether it is a method or a reference baseline (a recipe's
``role: reference``): both are ranked and compared alike; the boards label reference rows.
New entries go to the user's folder (``default_leaderboard_dir``), never the shipped boards.

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
from minbench.io import file_lock, write_bytes_atomic, write_json_atomic
from minbench.paths import cache_dir, shipped_dir
from minbench.recipes import config_changes, config_hash

SCHEMA_ID = "minbench-leaderboard/2"
OLD_SCHEMAS = ("minbench-leaderboard/1",)  # read and migrated in memory, never rewritten unasked
SOURCES = ("run", "submission", "published")
#: an entry's role: a ``method``, or a ``reference`` baseline (what one simple cue alone
#: solves, e.g. colour only), ranked and compared like a method and labelled as a reference
ROLES = ("method", "reference")
ENV_DIR = "MINBENCH_LEADERBOARDS"


# ---- where boards live ----------------------------------------------------------------

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


def _key(d: Path):
    return d.resolve() if d.exists() else d


def is_shipped(path: Path) -> bool:
    """Whether a board file (or folder) is one of the shipped boards."""
    path = Path(path)
    folder = path if path.is_dir() else path.parent
    return _key(folder) == _key(shipped_board_dir())


def read_dirs() -> list[Path]:
    """Folders ``minbench leaderboard`` shows: yours (the write folder) and the shipped boards."""
    dirs, seen = [], set()
    for d in (default_leaderboard_dir(), shipped_board_dir()):
        if _key(d) not in seen:
            seen.add(_key(d))
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
                "metrics": [], "entries": [], "floors": []}
    return {"schema": SCHEMA_ID, "task": card.id, "kind": card.kind, "reference": False, "title": card.title,
            "dataset": dataset, "headline": card.headline, "metrics": metric_columns(card), "entries": [],
            "floors": []}


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
    if board.get("schema") in OLD_SCHEMAS:
        board = migrate(board)
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
        if e.get("role", "method") not in ROLES:
            c.fail(f"{at}.role", f"{e['role']!r} is not one of {', '.join(ROLES)}")
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
        c.need(e, "citation", (str,), at, nullable=True)
        for j, rec in enumerate(c.need(e, "seeds", (list,), at)):
            c.need(rec, "seed", (int,), f"{at}.seeds[{j}]", nullable=True)
            for k, v in c.need(rec, "metrics", (dict,), f"{at}.seeds[{j}]").items():
                if k not in names or (v is not None and not _is_num(v)):
                    c.fail(f"{at}.seeds[{j}].metrics.{k}", f"not a metric of this board or not a number ({v!r})")
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
    for i, f in enumerate(c.need(board, "floors", (list,), "board")):
        c.need(f, "name", (str,), f"floors[{i}]")
        c.need(f, "description", (str,), f"floors[{i}]")
        for k, v in c.need(f, "metrics", (dict,), f"floors[{i}]").items():
            if k not in names or (v is not None and not _is_num(v)):
                c.fail(f"floors[{i}].metrics.{k}", f"not a metric of this board or not a number ({v!r})")
    return board


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
        e["seeds"] = [_seed_record(seed, e.get("metrics") or {}, e.get("date"), e.get("code_version"),
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


# ---- entry identity: seeds and configs ------------------------------------------------
# A run's identity (its config without run bookkeeping, ``config_hash``) and how it differs
# from its recipe file (``config_changes``) belong to the recipe loader, recipes.py.

def _seed_record(seed, metrics, date, code_version, n_answered, sha) -> dict:
    return {"seed": seed, "metrics": dict(metrics), "date": date, "code_version": code_version,
            "n_answered": n_answered, "submission_sha256": sha}


def _seed_summary(seeds: list[dict], names: list[str]) -> tuple[dict, dict]:
    """Mean and sample standard deviation (ddof 1; null for fewer than two) per metric."""
    import numpy as np

    mean, std = {}, {}
    for k in names:
        vals = [r["metrics"].get(k) for r in seeds]
        vals = np.array([v for v in vals if v is not None], dtype=np.float64)
        mean[k] = float(vals.mean()) if len(vals) else None
        std[k] = float(vals.std(ddof=1)) if len(vals) >= 2 else None
    return mean, std


# ---- per-sample files -----------------------------------------------------------------

def samples_folder(board_path: Path) -> Path:
    """``<board stem>.samples/`` beside the board."""
    board_path = Path(board_path)
    return board_path.with_name(f"{board_path.stem}.samples")


def entry_samples(board_path: Path, entry: dict):
    """The entry's per-sample results (``samples.Samples``); ``SamplesError`` when it has
    none, or the file is missing, truncated or does not fit."""
    from minbench.scoring.samples import SamplesError, read

    info = entry.get("samples")
    if not info:
        raise SamplesError(f"{entry['name']}: no per-sample results recorded (scored before they were kept)")
    s = read(Path(board_path).parent / info["file"], sha=info.get("sha256"), n=entry.get("n_samples"))
    missing = [x for x in info["seeds"] if x not in s.seeds]
    if missing:
        raise SamplesError(f"{info['file']}: lacks seeds {missing} of entry {entry['name']}")
    return s.select(info["seeds"])


# ---- adding entries -------------------------------------------------------------------

def _same_dataset(a: dict, b: dict) -> bool:
    return (a.get("name"), a.get("version"), a.get("fingerprint")) == (b.get("name"), b.get("version"),
                                                                       b.get("fingerprint"))


def describe_dataset(ds: dict) -> str:
    """A dataset as messages name it: name, version and fingerprint prefix."""
    fp = ds.get("fingerprint")
    return f"{ds.get('name')} {ds.get('version')}" + (f" ({fp[:20]}…)" if fp else " (published)")


def _check_fits(path: Path, board: dict, fresh: dict) -> None:
    if board.get("reference") != fresh.get("reference") or board.get("task") != fresh.get("task"):
        raise UserError(f"{path}: a board for {board.get('task') or 'reference ' + str(board.get('kind'))}, "
                        f"not for {fresh.get('task') or 'reference ' + str(fresh.get('kind'))}")
    if not _same_dataset(board["dataset"], fresh["dataset"]):
        raise UserError(f"{path}: holds results on {describe_dataset(board['dataset'])}; this one is on "
                        f"{describe_dataset(fresh['dataset'])}. Results on different datasets never share a "
                        f"leaderboard (its own file: {board_filename(fresh.get('task'), fresh['dataset'], fresh['reference'])})")


def _locked_update(path: Path, fresh: dict, update) -> Path:
    """Re-read the board at ``path`` (or ``fresh``) under its lock, let ``update(board)``
    change it, and replace it atomically. ``update`` returns ``(write, drop)``: per-sample
    files to write first (relative name -> bytes) and files to delete once the board is
    written; a failure removes what was written and leaves the board as it was."""
    path = Path(path)
    with file_lock(path.with_name(f".{path.name}.lock")):
        board = load_board(path) if path.exists() else fresh
        _check_fits(path, board, fresh)
        if board["reference"]:  # reference boards grow their metric list with their entries
            known = {m["name"] for m in board["metrics"]}
            board["metrics"] += [m for m in fresh["metrics"] if m["name"] not in known]
            board["headline"] = board["headline"] or fresh["headline"]
        if not board.get("floors") and fresh.get("floors"):
            board["floors"] = fresh["floors"]
        write, drop = update(board)
        validate_board(board, where=str(path))
        written = []
        try:
            for rel, data in write.items():
                write_bytes_atomic(path.parent / rel, data)
                written.append(path.parent / rel)
            write_json_atomic(path, board)
        except BaseException:
            for f in written:
                f.unlink(missing_ok=True)
            raise
        for rel in drop:
            if rel not in write:
                (path.parent / rel).unlink(missing_ok=True)
    return path


def _locked_add(path: Path, fresh: dict, entry: dict) -> Path:
    """Add ``entry`` to the board at ``path`` (made from ``fresh`` when absent); an entry of
    the same name is replaced."""
    validate_board({**fresh, "entries": [entry]}, where=f"{path} (new entry)")

    def update(board):
        old = [e for e in board["entries"] if e["name"] == entry["name"]]
        board["entries"] = [e for e in board["entries"] if e["name"] != entry["name"]] + [entry]
        return {}, [e["samples"]["file"] for e in old if e.get("samples")]

    return _locked_update(path, fresh, update)


def _entry(*, name: str, method: str, source: str, metrics: dict, ci: dict, n_samples: int | None,
           date: str, code_version: str | None, config: dict | None, seeds: list[dict],
           citation: str | None = None, role: str = "method", **extra) -> dict:
    _, std = _seed_summary(seeds, list(metrics))
    return {"id": uuid.uuid4().hex[:12], "name": name, "method": method, "role": role, "source": source,
            "metrics": metrics, "ci": ci, "n_samples": n_samples, "date": date, "code_version": code_version,
            "config": config, "seeds": seeds, "n_seeds": len(seeds),
            "std": {k: v for k, v in std.items() if v is not None}, "config_hash": None, "modified": None,
            "samples": None, "citation": citation, **extra}


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
    its name. The per-sample results (``result.table``) go to a file beside the board,
    written with it. ``data_dir``/``task_data``: the dataset, to add the board's floor rows
    when it has none yet.
    """
    from minbench.scoring import samples as S

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
    dataset = {k: result.dataset.get(k) for k in ("name", "version", "source", "fingerprint")}
    if not dataset.get("fingerprint"):
        raise UserError(f"dataset {dataset.get('name')}: no manifest fingerprint; cannot rank its scores")
    names = [m.name for m in card.metrics]
    metrics = {k: (float(v) if v is not None and math.isfinite(v) else None) for k, v in result.metrics.items()}
    config = _jsonable(config)
    name = str(name).strip()
    changes, chash = [], None
    if source == "run" and config is not None:
        changes, chash = config_changes(config), config_hash(config)
        if changes:
            name = f"{name}*{chash[:6]}"
    else:
        seed = None  # a submission is one set of predictions: re-scoring its name replaces it
    record = _seed_record(seed, metrics, result.scored_at, result.code_version, int(result.n_answered),
                          result.submission.get("sha256"))
    new_samples = None
    if getattr(result, "table", None) is not None and result.per_sample is not None:
        new_samples = S.from_table(S.family_of(card.kind), result.per_sample["sample_id"], result.table, seed)
    target = Path(path) if path else Path(leaderboard_dir or default_leaderboard_dir()) / board_filename(
        task_id, dataset)
    fresh = new_board(card, dataset)
    if task_data is not None or data_dir is not None:
        fresh["floors"] = _floors_if_missing(target, card, dataset, task_data, data_dir)

    def update(board):
        old = next((e for e in board["entries"] if e["name"] == name), None)
        merge = (old is not None and source == "run" and old["source"] == "run"
                 and old.get("config_hash") == chash and chash is not None
                 and old.get("task_version") == result.task_version)  # a changed protocol never mixes
        seeds = [r for r in old["seeds"] if r["seed"] != seed] if merge else []
        seeds = sorted(seeds + [record], key=lambda r: (r["seed"] is not None, r["seed"] or 0))
        mean, std = _seed_summary(seeds, names)
        entry = _entry(name=name, method=method or "", source=source, metrics=mean, ci=result.ci,
                       n_samples=int(result.n_samples), date=result.scored_at, code_version=result.code_version,
                       config=config, seeds=seeds, role=role, n_answered=int(result.n_answered),
                       submission_sha256=result.submission.get("sha256"), task_version=result.task_version)
        entry["std"] = std
        entry["config_hash"], entry["modified"] = chash, (changes if source == "run" else None)
        if merge:
            entry["id"] = old["id"]
        write, drop = {}, [old["samples"]["file"]] if old and old.get("samples") else []
        if new_samples is not None:
            combined = new_samples
            if merge and old.get("samples"):
                try:
                    combined = S.merge(entry_samples(target, old), new_samples)
                except S.SamplesError:
                    pass  # unreadable: keep the per-sample results of the new seed only
            data = S.to_bytes(combined)
            sha = S.sha256(data)
            rel = f"{samples_folder(target).name}/{entry['id']}-{sha[7:15]}.npz"
            write[rel] = data
            entry["samples"] = {"file": rel, "sha256": sha, "seeds": combined.seeds}
            entry["ci"] = _entry_ci(card, result.ci, combined)
        elif len(seeds) > 1:
            entry["ci"] = {}  # no per-sample results to pool the seeds' intervals
        board["entries"] = [e for e in board["entries"] if e["name"] != name] + [entry]
        return write, drop

    return _locked_update(target, fresh, update)


def _entry_ci(card: TaskCard, ci: dict, samples) -> dict:
    """The intervals of the metrics the scorer gave one for, over the entry's seeds."""
    from minbench.scoring.stats import seed_mean_interval

    specs = {m.name: m for m in card.metrics}
    return {k: seed_mean_interval(specs[k], samples.tables, n_resamples=int(v.get("n_resamples", 1000)),
                                  level=float(v.get("level", 0.95)), seed=int(v.get("seed", 0))).to_json()
            for k, v in ci.items() if k in specs}


def _floors_if_missing(target: Path, card: TaskCard, dataset: dict, task_data, data_dir) -> list[dict]:
    """The floor rows of the dataset, unless the board at ``target`` has them already."""
    from minbench.scoring.floors import compute_floors
    from minbench.scoring.score import load_task_data

    try:
        if target.exists() and load_board(target).get("floors"):
            return []
    except UserError:
        return []  # the locked update reports the broken board
    data = task_data if task_data is not None else load_task_data(card.id, data_dir)
    if data.info.fingerprint != dataset.get("fingerprint"):
        return []
    return compute_floors(data)


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
                   n_samples=n_samples, date=date or now_utc(), code_version=None, config=None, seeds=[],
                   citation=citation.strip(), **extra)
    target = Path(path) if path else Path(leaderboard_dir or default_leaderboard_dir()) / board_filename(
        task_id, dataset, reference)
    return _locked_add(target, fresh, entry)


def publish(task_id: str, name: str, *, source_dir: str | Path | None = None,
            dest_dir: str | Path | None = None) -> Path:
    """Copy entry ``name`` of ``task_id`` from your boards (``source_dir``, default
    ``default_leaderboard_dir()``) with its per-sample file into the shipped boards
    (``dest_dir``, default ``shipped_board_dir()``), replacing an entry of that name there."""
    from minbench.paths import PACKAGE_DIR

    get_card(task_id)
    src = Path(source_dir or default_leaderboard_dir())
    dest = Path(dest_dir or shipped_board_dir())
    if _key(src) == _key(dest):
        raise UserError(f"publish: {src} is already the shipped folder")
    if _key(dest).is_relative_to(_key(PACKAGE_DIR)):
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
        from minbench.scoring.samples import sha256
        if sha256(data) != entry["samples"]["sha256"]:
            raise UserError(f"publish: {path.parent / entry['samples']['file']}: per-sample file changed since the "
                            "board was written; re-run or re-score the entry first")
    target = dest / path.name
    fresh = {**board, "entries": []}

    def update(b):
        old = [e for e in b["entries"] if e["name"] == name]
        write = {}
        if data is not None:
            rel = f"{samples_folder(target).name}/{Path(entry['samples']['file']).name}"
            entry["samples"]["file"] = rel
            write[rel] = data
        b["entries"] = [e for e in b["entries"] if e["name"] != name] + [entry]
        return write, [e["samples"]["file"] for e in old if e.get("samples")]

    return _locked_update(target, fresh, update)
