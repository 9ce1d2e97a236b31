"""Score a submission file against a prepared dataset: ``score_submission``.

The task card says which manifest rows are the test set, which format to read and
which metrics to compute; the metric registry computes them and the bootstrap gives
the headline's confidence interval. Nothing here writes a leaderboard.

This is the one path to a reported number: pipelines score the submission files they
write, and figures that are not a submission (a reference rule's answers kept in memory,
generalised zero-shot) go through ``score_table`` or ``scoring.gzsl`` on the same rows.
The scorer imports no deep-learning framework (NumPy, pandas and Pillow only).
"""

from __future__ import annotations

import datetime as _dt
import functools
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from minbench._version import __version__
from minbench.cards import TaskCard, get_card
from minbench.errors import UserError
from minbench.io import write_json_atomic
from minbench.paths import PACKAGE_DIR
from minbench.scoring.bootstrap import DEFAULT_LEVEL, DEFAULT_RESAMPLES, DEFAULT_SEED

SCORE_SCHEMA = "minbench-score/1"


@dataclass
class ScoreResult:
    """The outcome of scoring one submission.

    ``metrics``: card metric name -> value (NaN when undefined, e.g. R² of one answer);
    ``ci``: metric name -> interval dict (``low``, ``high``, ``level``, ``n_resamples``,
    ``seed``, ``method``), at least for the headline; ``dataset``: name, version, source,
    truth fingerprint (the board key) and image fingerprint scored against; ``task_version``: the task card's
    ``version``; ``per_sample``: one row per test sample.
    """

    task_id: str
    headline: str
    metrics: dict[str, float]
    ci: dict[str, dict]
    n_samples: int
    n_answered: int
    dataset: dict[str, Any]
    submission: dict[str, Any]
    code_version: str
    scored_at: str
    task_version: int | None = None  # the card's version (score_submission always sets it)
    per_sample: pd.DataFrame | None = field(default=None, repr=False)
    table: dict[str, np.ndarray] | None = field(default=None, repr=False)  # metrics.py's per-sample table

    @property
    def headline_value(self) -> float:
        return self.metrics[self.headline]

    def to_json(self, *, per_sample: bool = False) -> dict[str, Any]:
        out = {
            "schema": SCORE_SCHEMA, "task": self.task_id, "task_version": self.task_version,
            "headline": self.headline,
            "metrics": {k: _num(v) for k, v in self.metrics.items()}, "ci": self.ci,
            "n_samples": self.n_samples, "n_answered": self.n_answered, "dataset": self.dataset,
            "submission": self.submission, "code_version": self.code_version, "scored_at": self.scored_at,
        }
        if per_sample and self.per_sample is not None:
            table = self.per_sample.astype(object).where(self.per_sample.notna(), None)
            out["per_sample"] = table.to_dict(orient="records")
        return out


def _num(x: float) -> float | None:
    return None if x is None or not np.isfinite(x) else float(x)


def write_score_json(result: ScoreResult, path: str | Path, *, per_sample: bool = False) -> Path:
    """Write the score JSON atomically (``per_sample=True`` adds one record per test sample)."""
    path = Path(path)
    write_json_atomic(path, result.to_json(per_sample=per_sample))
    return path


@functools.lru_cache(maxsize=1)
def code_version() -> str:
    """``minbench <version>``, plus the git commit (and ``-dirty``) when run from a checkout."""
    try:
        commit = subprocess.run(["git", "-C", str(PACKAGE_DIR), "rev-parse", "--short=12", "HEAD"],
                                capture_output=True, text=True, timeout=5)
        if commit.returncode != 0:
            return f"minbench {__version__}"
        dirty = subprocess.run(["git", "-C", str(PACKAGE_DIR), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10)
        mark = "-dirty" if dirty.returncode == 0 and dirty.stdout.strip() else ""
        return f"minbench {__version__} (git {commit.stdout.strip()}{mark})"
    except (OSError, subprocess.SubprocessError):
        return f"minbench {__version__}"


def now_utc() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class TaskData:
    """A task's card with the dataset it is scored on (load once, score many files)."""

    card: TaskCard
    folder: Path
    info: Any            # minbench.data.manifest.DatasetInfo
    manifest: pd.DataFrame
    rows: pd.DataFrame   # the card's test rows, in manifest order
    #: a part of the test rows (``dev``/``final`` of a truth bundle's split) and which rows are in it
    part: str | None = None
    part_mask: np.ndarray | None = field(default=None, repr=False)


def load_task_data(task_id: str, data_dir: str | Path | None = None, *, truth: str | Path | None = None,
                   part: str | None = None) -> TaskData:
    """The card of ``task_id`` and the dataset at ``data_dir`` (None = the embedded one).

    ``truth``: the truth bundle of the public dataset ``data_dir`` (``minbench data seal``):
    its rows are put back and the task is scored as on the original dataset (whose identity
    it carries); ``part``: only the ``dev`` or ``final`` part of the bundle's split is scored.
    A sealed task of a public dataset without ``truth`` is ``scoring.truth.NoTruthError``.
    """
    from minbench.data.locate import resolve_dataset
    from minbench.data.manifest import read_info, read_manifest
    from minbench.scoring.truth import check_truth_args, part_mask, require_truth

    check_truth_args(truth, part)
    card = get_card(task_id)
    folder = resolve_dataset(data_dir)
    info = read_info(folder)
    if truth is None:
        require_truth(card.id, folder, info.public)
    info.require_task(card.id, folder)
    df = read_manifest(folder)
    mask = None
    if truth is not None:
        from minbench.data.public import read_truth, restore

        if info.public is None:
            raise UserError(f"--truth {truth}: --data {folder} is not a public dataset (it holds its own truth); "
                            "score without --truth")
        bundle = read_truth(truth)
        info, df = restore(folder, info, df, bundle, card.id)
        folder = bundle.folder  # the true masks lie in the bundle, at the manifest's paths
    rows = card.rows(df, "test", where=str(folder)).reset_index(drop=True)
    if part is not None:
        mask = part_mask(rows, bundle.part_ids(card.id, part))
    return TaskData(card=card, folder=folder, info=info, manifest=df, rows=rows, part=part, part_mask=mask)


def truth_after_submission(task_id: str, submission: str | Path, data_dir: str | Path | None = None) -> TaskData:
    """The scorer's reader (``load_task_data``: the test rows with their truth) for what a
    run draws or summarises from the truth (plots, galleries, GZSL figures, the true column
    of a details table): only once its submission is written, so nothing before it can
    depend on the truth (the sealed protocol, ``minbench.data.seal``). A ``RuntimeError``
    when ``submission`` (a file or folder) is not there yet."""
    from minbench.scoring.truth import NoTruthError

    if not Path(submission).exists():
        raise RuntimeError(f"the test truth is read after the submission is written; {submission} is not there")
    try:
        return load_task_data(task_id, data_dir)
    except NoTruthError as exc:  # a public dataset: minbench run names the submission it wrote
        exc.predictions = Path(submission)
        raise


def score_submission(task_id: str, predictions: str | Path, data_dir: str | Path | None = None, *,
                     n_resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED, level: float = DEFAULT_LEVEL,
                     ci_metrics: str = "headline", task_data: TaskData | None = None) -> ScoreResult:
    """Read, check and score a submission for ``task_id`` against a prepared dataset.

    ``data_dir``: a prepared dataset folder (None = the embedded one); or pass
    ``task_data`` from ``load_task_data`` to score several files against one load.
    ``ci_metrics``: ``"headline"`` (default) or ``"all"`` metrics get a bootstrap
    interval. Raises ``UserError`` for anything wrong with the submission, naming the
    file and row.
    """
    from minbench.scoring.formats import SUBMISSION_FORMATS

    from minbench.scoring.truth import NoTruthError

    try:
        data = task_data if task_data is not None else load_task_data(task_id, data_dir)
    except NoTruthError as exc:  # minbench run names the submission it wrote
        exc.predictions = Path(predictions)
        raise
    if data.card.id != task_id:
        raise ValueError(f"task_data is for {data.card.id}, not {task_id}")
    card, info, rows = data.card, data.info, data.rows
    predictions = Path(predictions)
    read = SUBMISSION_FORMATS.get(card.submission_format, what=f"{card.path}: submission.format")
    sub = read(predictions, data)
    table, per_sample, n_samples, n_answered = sub.table, sub.per_sample, len(rows), sub.n_answered
    dataset = info.identity()
    if data.part is not None:  # the whole submission is checked above; one part of it is scored
        from minbench.scoring.truth import answered, restrict

        table, per_sample = restrict(table, per_sample, data.part_mask)
        n_samples, n_answered, dataset["part"] = int(data.part_mask.sum()), answered(per_sample), data.part
    values, ci = score_table(card, table, n_resamples=n_resamples, level=level, seed=seed, ci_metrics=ci_metrics)
    return ScoreResult(
        task_id=card.id, task_version=card.version, headline=card.headline, metrics=values, ci=ci,
        n_samples=n_samples, n_answered=n_answered, dataset=dataset,
        submission={"path": str(predictions), "format": sub.submission.format, "sha256": sub.submission.sha256,
                    "bytes": sub.submission.n_bytes},
        code_version=code_version(), scored_at=now_utc(), per_sample=per_sample, table=table,
    )


def score_table(card: TaskCard, table: dict[str, np.ndarray], *, n_resamples: int = DEFAULT_RESAMPLES,
                seed: int = DEFAULT_SEED, level: float = DEFAULT_LEVEL,
                ci_metrics: str = "headline") -> tuple[dict[str, float], dict[str, dict]]:
    """The card's metrics and bootstrap intervals on a per-sample table (``scoring.tables``:
    ``classification_table``, ``segmentation_table``, ``size_table``); what
    ``score_submission`` computes once it has read the file, for answers held in memory."""
    from minbench.scoring import metrics as M
    from minbench.scoring.stats import metric_ci

    values = M.evaluate(card, table)
    ci_specs = card.metrics if ci_metrics == "all" else [card.headline_metric]
    ci = {spec.name: metric_ci(spec, table, n_resamples=n_resamples, level=level, seed=seed).to_json()
          for spec in ci_specs}
    return values, ci
