"""The size CSV (``size_csv``): ``sample_id,size_cm``.

An empty cell (or a missing row, when the card allows abstention) abstains.
``write_size_csv`` writes it (the size pipeline and fixtures call it), ``read_size_csv``
reads and checks it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from minbench.errors import UserError
from minbench.scoring import tables as T
from minbench.scoring.formats._common import (CSV_SLACK_BYTES, SUBMISSION_FORMATS, ReadSubmission, Submission,
                                              check_ids, check_size, need_file,
                                              read_csv_strings, sha256_of, write_csv_atomic)

SIZE_BYTES_PER_ROW = 256
MAX_SIZE_CM = 1000.0                 # no specimen photographed on a museum table is 10 m long


@dataclass(frozen=True)
class SizeSubmission(Submission):
    pred_cm: np.ndarray      # N_test predictions in test-row order, NaN = abstained
    n_missing_rows: int


def read_size_csv(path: Path, *, task_id: str, test_ids: pd.Index, allow_missing: bool) -> SizeSubmission:
    """Read ``sample_id,size_cm``; ``pred_cm`` is aligned with ``test_ids`` (NaN = abstained)."""
    path = Path(path)
    need_file(path)
    n_bytes = check_size(path, CSV_SLACK_BYTES + SIZE_BYTES_PER_ROW * len(test_ids),
                          f"size submission for {len(test_ids)} test samples")
    hint = "sample_id,size_cm"
    t = read_csv_strings(path, hint)
    if t.columns != ["sample_id", "size_cm"]:
        raise UserError(f"{path}: columns are {','.join(t.columns) or '(none)'}; expected exactly {hint}")
    if not t.n_rows:
        raise UserError(f"{path}: header only, no rows")
    pos = check_ids(t, test_ids, task_id, allow_missing=allow_missing)
    text = t.strings("size_cm")
    given = (text != "").to_numpy()
    values = pd.to_numeric(text.where(given, None), errors="coerce").to_numpy(dtype=np.float64)

    def refuse(mask: np.ndarray, what: str) -> None:
        if mask.any():
            i = int(np.argmax(mask))
            raise UserError(f"{path}: line {t.line(i)}: size_cm {text.iloc[i]!r} {what} "
                            f"({int(mask.sum())} such rows)")

    spelled = text.str.lower().str.lstrip("+-").isin(["nan", "inf", "infinity"]).to_numpy()
    refuse(given & np.isnan(values) & ~spelled, "is not a number")
    refuse(given & ~np.isfinite(values), "is not a finite number (leave the cell empty to abstain)")
    refuse(given & (values <= 0), "is not a positive size")
    refuse(given & (values > MAX_SIZE_CM), f"is absurd (more than {MAX_SIZE_CM:g} cm)")
    pred = np.full(len(test_ids), np.nan)
    pred[pos] = np.where(given, values, np.nan)
    return SizeSubmission(format="size_csv", sha256=sha256_of(path), n_bytes=n_bytes, pred_cm=pred,
                          n_missing_rows=len(test_ids) - t.n_rows)


@SUBMISSION_FORMATS.register("size_csv")
def score_size_csv(path: Path, data) -> ReadSubmission:
    """A size CSV against the task's test rows (an abstention counts as unanswered)."""
    rows = data.rows
    test_ids = pd.Index(rows["sample_id"])
    sub = read_size_csv(path, task_id=data.card.id, test_ids=test_ids, allow_missing=data.card.abstain)
    table = T.size_table(sub.pred_cm, rows["size_cm"].to_numpy())
    per_sample = pd.DataFrame({"sample_id": test_ids, "size_cm": rows["size_cm"], "pred_cm": sub.pred_cm,
                               "abs_error_cm": np.abs(sub.pred_cm - rows["size_cm"].to_numpy())})
    return ReadSubmission(sub, table, int(np.isfinite(sub.pred_cm).sum()), per_sample)


def write_size_csv(path: str | Path, sample_ids: Sequence[str], sizes_cm: Sequence[float | None]) -> Path:
    """Write ``sample_id,size_cm`` atomically (4 decimals); a missing or non-finite size
    abstains (empty cell). Returns ``path``."""
    def cell(v) -> str:
        try:
            v = float(v)
        except (TypeError, ValueError):
            return ""
        return f"{v:.4f}" if math.isfinite(v) else ""

    return write_csv_atomic(path, ["sample_id", "size_cm"], [[str(s), cell(v)] for s, v in zip(sample_ids, sizes_cm)])
