"""The run folder every ``minbench run`` writes, whatever the task kind.

Layout::

    <out>/
      config.yaml          the resolved config (recipe + command-line overrides + dataset)
      seed<N>/             one folder per seed, written by the kind's pipeline:
        status.json        {"state": "running" | "finished" | "predicted", "metrics": {...}, ...}
                           (predicted: a public dataset's submission, scored elsewhere with its truth)
        checkpoints/ logs/ predictions file, score.json, plots/
      summary.json         mean and std over the finished seeds (std null for one seed);
                           written last, so its presence is what makes a run "finished"

Rules: a finished run is never overwritten without ``--overwrite``; an unfinished one is
continued with ``--resume`` (finished seeds are skipped, the others restart from their last
checkpoint) or replaced with ``--overwrite``; ``--overwrite`` only ever empties a folder
that is a minbench run folder (or empty), never an arbitrary directory.

Under DDP only the process of global rank 0 prepares the folder and writes files
(``is_rank_zero``); the other ranks compute the same plan and only train.
"""

from __future__ import annotations

import math
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import yaml

from minbench.errors import UserError
from minbench.io import ensure_writable, read_json, read_yaml, write_json_atomic, write_text_atomic
from minbench.scoring.seeds import summarise_metrics

CONFIG_FILE = "config.yaml"
SUMMARY_FILE = "summary.json"
STATUS_FILE = "status.json"
MARKER_KEY = "minbench_run"


def seed_dirname(seed: int) -> str:
    return f"seed{seed}"


@dataclass
class RunFolder:
    """A run's output folder (see the module docstring for its layout and rules)."""

    root: Path

    # --- state -----------------------------------------------------------------------------
    @property
    def config_path(self) -> Path:
        return self.root / CONFIG_FILE

    @property
    def summary_path(self) -> Path:
        return self.root / SUMMARY_FILE

    def seed_dir(self, seed: int) -> Path:
        return self.root / seed_dirname(seed)

    def seed_status(self, seed: int) -> dict[str, Any]:
        path = self.seed_dir(seed) / STATUS_FILE
        if not path.is_file():
            return {}
        try:
            return read_json(path, "seed status")
        except UserError:  # a status half-written by a killed run: the seed is not finished
            return {}

    def seed_finished(self, seed: int) -> bool:
        return self.seed_status(seed).get("state") == "finished"

    def is_run_folder(self) -> bool:
        if not self.config_path.is_file():
            return False
        try:
            raw = read_yaml(self.config_path, "run config")
        except UserError:
            return False
        return isinstance(raw, dict) and MARKER_KEY in raw

    def is_finished(self) -> bool:
        return self.summary_path.is_file()

    def read_config(self) -> dict[str, Any]:
        if not self.is_run_folder():
            raise UserError(f"--out {self.root}: no minbench run to resume here ({CONFIG_FILE} missing)")
        stored = read_yaml(self.config_path, "run config")
        # the marker says "this is a run folder"; it is no part of the method's config (a resumed
        # run kept it, and its leaderboard entry counted it as a change: "<recipe>*<hash>")
        return {k: v for k, v in stored.items() if k != MARKER_KEY} if isinstance(stored, dict) else stored

    # --- transitions -----------------------------------------------------------------------
    def prepare(self, *, overwrite: bool, resume: bool) -> None:
        """Check the folder against the rules and make it ready (rank 0 only)."""
        root = self.root
        if resume and overwrite:
            raise UserError("--resume and --overwrite exclude each other")
        if root.exists() and not root.is_dir():
            raise UserError(f"--out {root}: exists and is not a folder")
        occupied = root.is_dir() and any(root.iterdir())
        if resume:
            self.read_config()  # raises when there is nothing to resume
            if self.is_finished():
                raise UserError(f"--out {root}: the run there is finished; nothing to resume "
                                "(pass --overwrite to run it again)")
            return
        if occupied and not overwrite:
            if self.is_finished():
                raise UserError(f"--out {root}: holds a finished run; pass --overwrite to replace it "
                                "or choose another --out")
            if self.is_run_folder():
                raise UserError(f"--out {root}: holds an unfinished run; pass --resume to continue it "
                                "or --overwrite to start over")
            raise UserError(f"--out {root}: folder is not empty and is not a minbench run folder")
        if occupied:
            if not self.is_run_folder():
                raise UserError(f"--out {root}: not a minbench run folder ({CONFIG_FILE} missing); "
                                "refusing to empty it")
            for child in root.iterdir():
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child)
                else:
                    child.unlink()
        ensure_writable(root, "the run", "choose another --out")  # a read-only or full folder: one line

    def write_config(self, config: dict[str, Any]) -> None:
        """Write the resolved config (it carries the marker that makes this a run folder)."""
        body = {MARKER_KEY: 1, **{k: v for k, v in config.items() if k != MARKER_KEY}}
        write_text_atomic(self.config_path, yaml.safe_dump(body, sort_keys=False, allow_unicode=True))

    def mark_seed(self, seed: int, state: str, **fields: Any) -> None:
        status = {**self.seed_status(seed), "state": state, "seed": seed, **fields}
        write_json_atomic(self.seed_dir(seed) / STATUS_FILE, jsonable(status))

    def finish(self, seeds: Iterable[int], extra: dict[str, Any] | None = None) -> dict[str, Any]:
        """Summarise the finished seeds into ``summary.json`` and return it: mean ± std of
        each seed's ``metrics`` (the scores) and ``stats`` (e.g. images/s)."""
        per_seed = {}
        for seed in seeds:
            status = self.seed_status(seed)
            if status.get("state") != "finished":
                raise RuntimeError(f"seed {seed} is not finished; cannot summarise")
            per_seed[seed] = status
        summary = {
            "seeds": list(per_seed),
            "metrics": summarise([s.get("metrics", {}) for s in per_seed.values()]),
            "stats": summarise([s.get("stats", {}) for s in per_seed.values()]),
            "per_seed": {str(k): v.get("metrics", {}) for k, v in per_seed.items()},
            **(extra or {}),
        }
        write_json_atomic(self.summary_path, jsonable(summary))
        return summary


def summarise(per_seed: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """``{metric: {mean, std, n, values}}`` over seeds (``scoring.seeds.summarise``: sample
    std, null for one seed, as on the leaderboards).

    Only numeric scalar entries are summarised; a metric missing in some seeds is
    summarised over the seeds that have it.
    """
    return {name: s.to_json() for name, s in summarise_metrics(per_seed).items()}


def jsonable(obj: Any) -> Any:
    """Plain-JSON copy of ``obj`` (numpy/torch scalars, paths and tuples converted)."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "item") and callable(obj.item) and getattr(obj, "ndim", 0) == 0:
        return obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj
