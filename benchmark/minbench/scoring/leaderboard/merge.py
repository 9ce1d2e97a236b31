"""Where one scored run or submission goes on a board: a pure function of the board and the
record, no file touched (``scored.add_entry`` does the reading and writing around it).

An entry is one method. A run's seed joins the entry of its name and resolved config (its
``config_hash``) scored under the same task version: the same seed replaces that seed only,
and the entry's metrics and ``std`` are over its seeds (``scoring.seeds``). A run whose
config differs from its recipe file (``modified``) is an entry of its own,
``<name>*<config hash 6>``. A submission, or a run of another config or task version,
replaces the entry of its name.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from minbench.scoring.leaderboard.schema import new_entry, seed_record
from minbench.scoring.seeds import summarise_metrics


@dataclass(frozen=True)
class EntryRecord:
    """One scored run seed or submission, ready to go on a board (``scored.record_of``
    builds it from a ``ScoreResult``)."""

    name: str                      # as given; a modified config's entry adds ``*<hash 6>``
    method: str
    source: str                    # "run" or "submission"
    metrics: dict                  # metric -> value (None where undefined)
    metric_names: tuple[str, ...]  # the card's metrics: the entry's mean and std are over these
    ci: dict                       # metric -> the scorer's interval of this seed
    n_samples: int
    n_answered: int
    date: str
    code_version: str | None
    role: str = "method"
    seed: int | None = None        # a run's seed; None for a submission
    config: dict | None = None
    config_hash: str | None = None  # a run's identity (``recipes.config_hash``)
    modified: list[str] = field(default_factory=list)  # ``recipes.config_changes`` of a run
    submission_sha256: str | None = None
    task_version: int | None = None
    image_fingerprint: str | None = None  # the photos scored on (the board keys on the truth)


def entry_name(record: EntryRecord) -> str:
    """The entry a record goes to: its name, or ``<name>*<config hash 6>`` for a run whose
    config differs from its recipe file."""
    if record.source == "run" and record.modified:
        return f"{record.name}*{record.config_hash[:6]}"
    return record.name


def joins(old: dict | None, record: EntryRecord) -> bool:
    """Whether ``record`` adds a seed to the entry ``old`` of its name rather than replacing
    it: both runs of one config, scored under one task version (a changed protocol never mixes)."""
    return (old is not None and record.source == "run" and old["source"] == "run"
            and record.config_hash is not None and old.get("config_hash") == record.config_hash
            and old.get("task_version") == record.task_version)


def _seed_order(r: dict) -> tuple[bool, int]:
    return r["seed"] is not None, r["seed"] or 0


def merge_entry(board: dict, record: EntryRecord) -> dict:
    """``board`` with ``record`` on it (a new dict; ``board`` is left as it was). The entry it
    joins keeps its id; its per-sample file is the caller's (``store.attach_samples``)."""
    name = entry_name(record)
    old = next((e for e in board["entries"] if e["name"] == name), None)
    joined = joins(old, record)
    mine = seed_record(record.seed, record.metrics, record.date, record.code_version, record.n_answered,
                       record.submission_sha256, record.image_fingerprint)
    seeds = [r for r in old["seeds"] if r["seed"] != record.seed] if joined else []
    seeds = sorted(seeds + [mine], key=_seed_order)
    spread = summarise_metrics([r["metrics"] for r in seeds], names=record.metric_names)
    entry = new_entry(name=name, method=record.method or "", source=record.source,
                      metrics={k: s.mean for k, s in spread.items()},
                      ci=dict(record.ci) if len(seeds) == 1 else {},  # one seed's interval is not the mean's
                      n_samples=record.n_samples, date=record.date, code_version=record.code_version,
                      config=record.config, seeds=seeds, role=record.role, n_answered=record.n_answered,
                      submission_sha256=record.submission_sha256, task_version=record.task_version)
    entry["std"] = {k: s.std for k, s in spread.items()}
    entry["config_hash"] = record.config_hash
    entry["modified"] = list(record.modified) if record.source == "run" else None
    if joined:
        entry["id"] = old["id"]
    return {**board, "entries": [e for e in board["entries"] if e["name"] != name] + [entry]}
