"""The ranked-species CSV (``ranked_csv``): classification and zero-shot tasks.

``sample_id,pred_1,...,pred_k`` (1 <= k <= the card's ``max_ranks``), species names best
first; trailing cells of a row may be empty (fewer guesses). ``write_ranked_csv`` writes
it (every pipeline and fixture calls it), ``read_ranked_csv`` reads and checks it.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from minbench.errors import UserError
from minbench.scoring import tables as T
from minbench.scoring.formats._common import (CSV_SLACK_BYTES, SUBMISSION_FORMATS, CsvTable, ReadSubmission,
                                              Submission, check_ids, check_size,
                                              need_file, read_csv_strings, sha256_of, write_csv_atomic)

RANKED_BYTES_PER_ROW = 4096          # an id and ten species names are a few hundred bytes
_PRED_COLUMN = re.compile(r"pred_(\d+)$")


@dataclass(frozen=True)
class RankedSubmission(Submission):
    ranked: np.ndarray       # N_test x K class indices in test-row order, -1 = empty slot
    k: int


def _rank_columns(path: Path, columns: list[str], max_ranks: int) -> int:
    hint = "sample_id,pred_1,...,pred_k"
    if not columns or columns[0] != "sample_id":
        found = columns[0] if columns else ""
        raise UserError(f"{path}: first column must be 'sample_id', found {found!r} (expected header {hint})")
    preds = columns[1:]
    numbers = []
    for col in preds:
        m = _PRED_COLUMN.match(col)
        if not m:
            raise UserError(f"{path}: unexpected column {col!r} (expected header {hint})")
        numbers.append(int(m.group(1)))
    if not preds:
        raise UserError(f"{path}: no prediction columns (expected header {hint})")
    if len(preds) > max_ranks or max(numbers) > max_ranks:
        raise UserError(f"{path}: {max(len(preds), max(numbers))} ranks; at most {max_ranks} are scored "
                        f"(columns pred_1..pred_{max_ranks})")
    if numbers != list(range(1, len(preds) + 1)):
        raise UserError(f"{path}: rank columns must be pred_1..pred_{len(preds)} in order, found {', '.join(preds)}")
    return len(preds)


def _species_codes(t: CsvTable, pred_cols: list[str], classes: pd.Index, task_id: str) -> np.ndarray:
    """Species names to class indices (-1 = empty cell); unknown names refused with hints."""
    import pyarrow as pa
    import pyarrow.compute as pc

    vocab = pa.array(list(classes), type=pa.string())
    codes = np.stack([pc.index_in(t.col(c), value_set=vocab).fill_null(-1).to_numpy(zero_copy_only=False)
                      for c in pred_cols], axis=1).astype(np.int64)
    empty = np.stack([pc.equal(t.col(c), "").to_numpy(zero_copy_only=False) for c in pred_cols], axis=1)
    unknown = (codes < 0) & ~empty
    if unknown.any():
        # second chance, case-insensitive, only for the few cells that missed
        folded = pd.Index([c.casefold() for c in classes])
        if folded.is_unique:
            cells = np.argwhere(unknown)
            names = [t.col(pred_cols[j])[int(i)].as_py() for i, j in cells]
            codes[cells[:, 0], cells[:, 1]] = folded.get_indexer([n.casefold() for n in names])
            unknown = (codes < 0) & ~empty
    if unknown.any():
        row, j = (int(v) for v in np.argwhere(unknown)[0])
        name = t.col(pred_cols[j])[row].as_py()
        close = difflib.get_close_matches(name, list(classes), n=3, cutoff=0.6) or \
            difflib.get_close_matches(name.casefold(), [c.casefold() for c in classes], n=3, cutoff=0.6)
        hint = f"closest: {', '.join(close)}" if close else f"task {task_id} has {len(classes)} species"
        more = int(unknown.sum()) - 1
        raise UserError(f"{t.path}: line {t.line(row)}, {pred_cols[j]}: unknown species {name!r} "
                        f"({hint})" + (f"; {more} more unknown names" if more else ""))
    return codes


def _check_rank_rows(t: CsvTable, codes: np.ndarray, pred_cols: list[str], classes: pd.Index) -> None:
    path = t.path
    empty = codes < 0
    if empty[:, 0].any():
        i = int(np.argmax(empty[:, 0]))
        raise UserError(f"{path}: line {t.line(i)}: pred_1 is empty (every row names at least one species)")
    # a filled slot after an empty one: ranks are contiguous, best first
    gap = empty[:, :-1] & ~empty[:, 1:]
    if gap.any():
        i, j = (int(v) for v in np.argwhere(gap)[0])
        raise UserError(f"{path}: line {t.line(i)}: {pred_cols[j]} is empty but {pred_cols[j + 1]} is not "
                        "(ranks are contiguous, best first)")
    s = np.sort(codes, axis=1)
    rep = (s[:, 1:] == s[:, :-1]) & (s[:, 1:] >= 0)
    if rep.any():
        i, j = (int(v) for v in np.argwhere(rep)[0])
        raise UserError(f"{path}: line {t.line(i)}: species {classes[s[i, j + 1]]!r} is ranked more than once")


def read_ranked_csv(path: Path, *, task_id: str, test_ids: pd.Index, classes: pd.Index,
                    max_ranks: int) -> RankedSubmission:
    """Read a ranked-species CSV; ``ranked`` is aligned with ``test_ids``.

    ``classes``: the task's species names (index = class index).
    """
    path = Path(path)
    need_file(path)
    n_bytes = check_size(path, CSV_SLACK_BYTES + RANKED_BYTES_PER_ROW * len(test_ids),
                          f"ranked submission for {len(test_ids)} test samples")
    t = read_csv_strings(path, "sample_id,pred_1,...,pred_k")
    k = _rank_columns(path, t.columns, max_ranks)
    if not t.n_rows:
        raise UserError(f"{path}: header only, no rows")
    pos = check_ids(t, test_ids, task_id, allow_missing=False)
    pred_cols = [f"pred_{j}" for j in range(1, k + 1)]
    codes = _species_codes(t, pred_cols, classes, task_id)
    _check_rank_rows(t, codes, pred_cols, classes)
    ranked = np.empty_like(codes)
    ranked[pos] = codes
    return RankedSubmission(format="ranked_csv", sha256=sha256_of(path), n_bytes=n_bytes, ranked=ranked, k=k)


@SUBMISSION_FORMATS.register("ranked_csv")
def score_ranked_csv(path: Path, data) -> ReadSubmission:
    """A ranked CSV against the task's test rows: the position of the true species in each row."""
    rows = data.rows
    test_ids = pd.Index(rows["sample_id"])
    classes = data.card.classes(data.manifest)
    sub = read_ranked_csv(path, task_id=data.card.id, test_ids=test_ids, classes=classes,
                          max_ranks=data.card.max_ranks)
    target = classes.get_indexer(rows["species"])
    table = T.classification_table(sub.ranked, target)
    per_sample = pd.DataFrame({"sample_id": test_ids, "species": rows["species"],
                               "pred_1": classes.to_numpy()[sub.ranked[:, 0]],
                               "rank_of_truth": np.where(table["pos"] == T.NO_HIT, np.nan, table["pos"] + 1)})
    return ReadSubmission(sub, table, len(rows), per_sample)


def write_ranked_csv(path: str | Path, sample_ids: Sequence[str], ranked: Sequence[Sequence[str]]) -> Path:
    """Write ``sample_id,pred_1..pred_k`` atomically; row i ranks ``ranked[i]`` (species
    names, best first; a shorter row leaves its last cells empty). Returns ``path``."""
    rows = [[str(sid), *map(str, names)] for sid, names in zip(sample_ids, ranked)]
    if len(rows) != len(sample_ids):
        raise ValueError(f"{len(sample_ids)} sample ids but {len(rows)} ranked rows")
    k = max((len(r) - 1 for r in rows), default=0)
    rows = [r + [""] * (k + 1 - len(r)) for r in rows]
    return write_csv_atomic(path, header(k), rows)


def header(k: int) -> list[str]:
    """The columns of a ranked CSV with ``k`` ranks."""
    return ["sample_id", *[f"pred_{j}" for j in range(1, k + 1)]]
