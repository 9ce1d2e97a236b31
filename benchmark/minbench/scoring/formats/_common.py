"""What the submission formats share: the registry the scorer dispatches on, size limits,
file checks, the CSV reader, sample-id checks.

CSV files may start with a byte-order mark and use CRLF line ends. Writers here are
atomic (``minbench.io``): a reader never sees half a file.
"""

from __future__ import annotations

import csv as _csv
import hashlib
import io
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from minbench.errors import UserError
from minbench.registry import Registry

# Size limits: far above any real submission, checked before reading a byte.
CSV_SLACK_BYTES = 1 << 20


@dataclass(frozen=True)
class Submission:
    """What a reader hands to the scorer."""

    format: str
    sha256: str
    n_bytes: int


@dataclass(frozen=True)
class ReadSubmission:
    """A submission read against a task's test rows, as the scorer needs it: the file's facts
    (``submission``), the per-sample table of ``scoring.metrics``, the rows it answered, and
    one row per test sample for the score JSON (``per_sample``)."""

    submission: Submission
    table: dict[str, np.ndarray]
    n_answered: int
    per_sample: pd.DataFrame


#: a card's ``submission.format`` -> ``read(path, data) -> ReadSubmission``, where ``data`` is
#: the task's ``score.TaskData`` (card, dataset folder, manifest, test rows); each format's
#: module registers its own
SUBMISSION_FORMATS: Registry[Callable[[Path, Any], ReadSubmission]] = Registry("submission format")


def check_size(path: Path, limit: int, what: str) -> int:
    size = path.stat().st_size
    if size > limit:
        raise UserError(f"{path}: {size / 2**20:.1f} MiB is far larger than any {what} "
                        f"(limit {limit / 2**20:.1f} MiB); is it the right file?")
    return size


def need_file(path: Path) -> None:
    if not path.exists():
        raise UserError(f"{path}: no such file")
    if not path.is_file():
        raise UserError(f"{path}: not a file")


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return "sha256:" + h.hexdigest()


class CsvTable:
    """A submission CSV as columns of stripped strings, with each data row's file line.

    Read with pyarrow's CSV reader (the C++ parser keeps a 100k-row file well under a
    second); every column is read as text so that ids like ``007`` stay as written.
    """

    def __init__(self, path: Path, raw: bytes, table) -> None:
        import pyarrow.compute as pc

        self.path = path
        self._raw = raw
        self.columns = [str(c).strip() for c in table.column_names]
        self._cols = [pc.utf8_trim_whitespace(table.column(i)) for i in range(table.num_columns)]
        self.n_rows = table.num_rows
        self._lines: np.ndarray | None = None

    def col(self, name: str):
        return self._cols[self.columns.index(name)]

    def strings(self, name: str) -> pd.Series:
        """A column as a pandas Series of str (index = row number)."""
        return self.col(name).to_pandas()

    def line(self, row: int) -> int:
        """File line of data row ``row`` (the header is line 1; blank lines are skipped)."""
        if self._lines is None:
            text = self._raw.split(b"\n")
            nonblank = np.flatnonzero([bool(t.strip()) for t in text]) + 1
            self._lines = nonblank[1:]  # the first non-blank line is the header
        return int(self._lines[row]) if row < len(self._lines) else int(row) + 2


def _bad_field_count(raw: bytes, n_columns: int) -> str:
    """Where a CSV row has the wrong number of fields (the slow path, after a parse error)."""
    import csv

    reader = csv.reader(io.StringIO(raw.decode("utf-8-sig"), newline=""))
    for row in reader:
        if row and len(row) != n_columns:
            return f"line {reader.line_num} has {len(row)} fields, the header has {n_columns}"
    return "malformed quoting"


def read_csv_strings(path: Path, columns_hint: str) -> CsvTable:
    """Read a submission CSV (BOM and CRLF accepted) into a ``CsvTable``."""
    import csv

    import pyarrow as pa
    import pyarrow.csv as pcsv

    raw = path.read_bytes()
    body = raw[3:] if raw.startswith(b"\xef\xbb\xbf") else raw
    if re.search(rb"\S", body) is None:
        raise UserError(f"{path}: empty file (expected a header {columns_hint})")
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}: not UTF-8 text (byte {exc.start}); save the CSV as UTF-8") from None
    first = body.lstrip(b"\r\n").split(b"\n", 1)[0].decode("utf-8")
    header = next(csv.reader([first.rstrip("\r")]), [])
    types = {name: pa.string() for name in header}
    try:
        table = pcsv.read_csv(pa.BufferReader(body),
                              convert_options=pcsv.ConvertOptions(column_types=types, strings_can_be_null=False,
                                                                  quoted_strings_can_be_null=False))
    except pa.ArrowInvalid as exc:
        if "Expected" in str(exc) and "columns" in str(exc):
            raise UserError(f"{path}: not a well-formed CSV ({_bad_field_count(raw, len(header))})") from None
        raise UserError(f"{path}: not a well-formed CSV ({str(exc).splitlines()[0]})") from None
    return CsvTable(path, body, table)


def check_ids(t: CsvTable, test_ids: pd.Index, task_id: str, allow_missing: bool) -> np.ndarray:
    """Row -> test position; refuses empty, duplicate, extra (and missing) sample ids."""
    path = t.path
    ids = t.strings("sample_id")
    empty = (ids == "").to_numpy()
    if empty.any():
        raise UserError(f"{path}: line {t.line(int(np.argmax(empty)))}: empty sample_id")
    import pyarrow.compute as pc

    if pc.count_distinct(t.col("sample_id")).as_py() != t.n_rows:
        dup = ids.duplicated(keep=False).to_numpy()
        first = ids[dup].iloc[0]
        lines = [t.line(i) for i in np.flatnonzero((ids == first).to_numpy())[:3]]
        raise UserError(f"{path}: sample_id {first!r} appears more than once (lines "
                        f"{', '.join(map(str, lines))}; {int(ids.duplicated().sum())} duplicate rows in all)")
    pos = test_ids.get_indexer(ids)
    extra = pos < 0
    if extra.any():
        i = int(np.argmax(extra))
        raise UserError(f"{path}: line {t.line(i)}: sample_id {ids.iloc[i]!r} is not a test sample of "
                        f"task {task_id} ({int(extra.sum())} such rows); submit exactly the test rows")
    n_missing = len(test_ids) - len(ids)
    if n_missing and not allow_missing:
        seen = np.zeros(len(test_ids), bool)
        seen[pos] = True
        first = test_ids[np.argmin(seen)]
        raise UserError(f"{path}: {n_missing} test samples of task {task_id} have no row "
                        f"(first: {first!r}); task {task_id} allows no abstention")
    return pos


def write_csv_atomic(path: str | Path, header: list[str], rows) -> Path:
    """Write ``header`` and ``rows`` (lists of cells) as a ``\\n``-terminated CSV, atomically."""
    from minbench.io import write_text_atomic

    buf = io.StringIO()
    w = _csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    path = Path(path)
    write_text_atomic(path, buf.getvalue())
    return path
