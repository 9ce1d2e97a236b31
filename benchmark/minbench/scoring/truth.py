"""Scoring with hidden labels: a public dataset and its truth bundle (``data/public.py``).

``score.load_task_data(task, PUBLIC, truth=TRUTH)`` puts the bundle's rows back into the
public manifest (checked by the original's fingerprint) and scores exactly as against the
original dataset; ``part`` (``dev`` or ``final``) keeps the per-sample table of one part of
the recorded split (``restrict``). Scoring a sealed task of a public dataset without its
truth is ``NoTruthError``: one line, and ``minbench run`` tells the submission is written.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from minbench.errors import UserError


class NoTruthError(UserError):
    """A sealed task of a public dataset scored without its truth bundle. ``predictions``:
    the submission that was to be scored (set by the scorer), for ``minbench run``'s line."""

    predictions: Path | None = None


def require_truth(task_id: str, folder: Path, public: dict | None) -> None:
    """``NoTruthError`` when ``folder`` is a public dataset sealed for ``task_id``."""
    if public is not None and task_id in (public.get("tasks") or []):
        raise NoTruthError(f"--data {folder}: a public dataset (the test truth of {task_id} is sealed); score with "
                           "its truth bundle: --truth TRUTH")


def part_mask(rows: pd.DataFrame, ids: list[str]) -> np.ndarray:
    """Which of the test ``rows`` are in a part (by sample id)."""
    return pd.Index(rows["sample_id"]).isin(pd.Index(ids))


def restrict(table: dict[str, np.ndarray], per_sample: pd.DataFrame, mask: np.ndarray):
    """The per-sample table and rows of one part: every per-sample array cut to ``mask``."""
    cut = {k: (np.asarray(v)[mask] if np.ndim(v) >= 1 and len(v) == len(mask) else v) for k, v in table.items()}
    return cut, per_sample.loc[mask].reset_index(drop=True)


def answered(per_sample: pd.DataFrame) -> int:
    """Rows answered in a part: a size submission may abstain (NaN ``pred_cm``); others answer all."""
    if "pred_cm" in per_sample.columns:
        return int(np.isfinite(per_sample["pred_cm"].to_numpy(dtype=np.float64)).sum())
    return len(per_sample)


def check_truth_args(truth, part) -> None:
    if part is not None and truth is None:
        raise UserError(f"--part {part}: only with --truth (the split is recorded in the truth bundle)")
