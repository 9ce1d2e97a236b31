"""Readers and validators of the three submission formats.

Each reader checks a submission against the task card and the test rows of the
manifest and returns arrays aligned with those rows, or raises ``UserError`` naming the
file, line (or member) and what is wrong. Sizes are checked before anything is read.

- ``ranked_csv``: ``sample_id,pred_1,...,pred_k`` (1 <= k <= the card's ``max_ranks``),
  species names best first; trailing cells of a row may be empty (fewer guesses).
- ``size_csv``: ``sample_id,size_cm``; an empty cell (or a missing row, when the card
  allows abstention) abstains.
- ``mask_pngs``: a folder or zip of ``<sample_id>.png`` single-channel masks of the
  image's size, nonzero = mineral.

CSV files may start with a byte-order mark and use CRLF line ends.
"""

from __future__ import annotations

import difflib
import hashlib
import io
import os
import re
import stat
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Callable, Iterator

import numpy as np
import pandas as pd

from minbench.errors import UserError

# Size limits: far above any real submission, checked before reading a byte.
CSV_SLACK_BYTES = 1 << 20
RANKED_BYTES_PER_ROW = 4096          # an id and ten species names are a few hundred bytes
SIZE_BYTES_PER_ROW = 256
MASK_BYTES_PER_PIXEL = 2             # a 16-bit single-channel PNG stored uncompressed
MASK_SLACK_BYTES = 64 << 10
MAX_SIZE_CM = 1000.0                 # no specimen photographed on a museum table is 10 m long
MASK_MODES = ("1", "L", "I", "I;16", "I;16B", "I;16L")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PRED_COLUMN = re.compile(r"pred_(\d+)$")


@dataclass(frozen=True)
class Submission:
    """What a reader hands to the scorer."""

    format: str
    sha256: str
    n_bytes: int


@dataclass(frozen=True)
class RankedSubmission(Submission):
    ranked: np.ndarray       # N_test x K class indices in test-row order, -1 = empty slot
    k: int


@dataclass(frozen=True)
class SizeSubmission(Submission):
    pred_cm: np.ndarray      # N_test predictions in test-row order, NaN = abstained
    n_missing_rows: int


# ---- shared helpers -------------------------------------------------------------------

def _check_size(path: Path, limit: int, what: str) -> int:
    size = path.stat().st_size
    if size > limit:
        raise UserError(f"{path}: {size / 2**20:.1f} MiB is far larger than any {what} "
                        f"(limit {limit / 2**20:.1f} MiB); is it the right file?")
    return size


def _need_file(path: Path) -> None:
    if not path.exists():
        raise UserError(f"{path}: no such file")
    if not path.is_file():
        raise UserError(f"{path}: not a file")


def _sha256(path: Path) -> str:
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


def _check_ids(t: CsvTable, test_ids: pd.Index, task_id: str, allow_missing: bool) -> np.ndarray:
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


# ---- ranked species CSV ---------------------------------------------------------------

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
    _need_file(path)
    n_bytes = _check_size(path, CSV_SLACK_BYTES + RANKED_BYTES_PER_ROW * len(test_ids),
                          f"ranked submission for {len(test_ids)} test samples")
    t = read_csv_strings(path, "sample_id,pred_1,...,pred_k")
    k = _rank_columns(path, t.columns, max_ranks)
    if not t.n_rows:
        raise UserError(f"{path}: header only, no rows")
    pos = _check_ids(t, test_ids, task_id, allow_missing=False)
    pred_cols = [f"pred_{j}" for j in range(1, k + 1)]
    codes = _species_codes(t, pred_cols, classes, task_id)
    _check_rank_rows(t, codes, pred_cols, classes)
    ranked = np.empty_like(codes)
    ranked[pos] = codes
    return RankedSubmission(format="ranked_csv", sha256=_sha256(path), n_bytes=n_bytes, ranked=ranked, k=k)


# ---- size CSV -------------------------------------------------------------------------

def read_size_csv(path: Path, *, task_id: str, test_ids: pd.Index, allow_missing: bool) -> SizeSubmission:
    """Read ``sample_id,size_cm``; ``pred_cm`` is aligned with ``test_ids`` (NaN = abstained)."""
    path = Path(path)
    _need_file(path)
    n_bytes = _check_size(path, CSV_SLACK_BYTES + SIZE_BYTES_PER_ROW * len(test_ids),
                          f"size submission for {len(test_ids)} test samples")
    hint = "sample_id,size_cm"
    t = read_csv_strings(path, hint)
    if t.columns != ["sample_id", "size_cm"]:
        raise UserError(f"{path}: columns are {','.join(t.columns) or '(none)'}; expected exactly {hint}")
    if not t.n_rows:
        raise UserError(f"{path}: header only, no rows")
    pos = _check_ids(t, test_ids, task_id, allow_missing=allow_missing)
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
    return SizeSubmission(format="size_csv", sha256=_sha256(path), n_bytes=n_bytes, pred_cm=pred,
                          n_missing_rows=len(test_ids) - t.n_rows)


# ---- PNG masks (folder or zip) --------------------------------------------------------

@dataclass(frozen=True)
class _Member:
    name: str                        # as shown in messages
    size: int
    read: Callable[[int], bytes]     # read at most n bytes


def _zip_members(path: Path) -> dict[str, _Member]:
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise UserError(f"{path}: not a readable zip ({exc})") from None
    infos = [i for i in zf.infolist() if not i.is_dir()]
    for info in infos:
        name = info.filename
        parts = PurePosixPath(name).parts
        if (name.startswith("/") or "\\" in name or ".." in parts or re.match(r"^[A-Za-z]:", name)
                or not parts):
            raise UserError(f"{path}: member {name!r} escapes the folder; refused")
        if stat.S_ISLNK(info.external_attr >> 16):
            raise UserError(f"{path}: member {name!r} is a symbolic link; refused")
        if info.flag_bits & 0x1:
            raise UserError(f"{path}: member {name!r} is encrypted")
    # masks may sit at the top or inside one common folder
    tops = {PurePosixPath(i.filename).parts[0] for i in infos}
    strip = len(tops) == 1 and all(len(PurePosixPath(i.filename).parts) == 2 for i in infos)
    members = {}
    for info in infos:
        parts = PurePosixPath(info.filename).parts[1:] if strip else PurePosixPath(info.filename).parts
        if len(parts) != 1:
            raise UserError(f"{path}: member {info.filename!r} is in a subfolder; put the masks at the top "
                            "(or all in one folder)")
        members[info.filename] = _Member(info.filename, info.file_size,
                                         lambda n, info=info: zf.open(info).read(n))
    return members


def _folder_members(path: Path) -> dict[str, _Member]:
    members = {}
    with os.scandir(path) as it:
        for entry in it:
            if entry.is_symlink():
                raise UserError(f"{path / entry.name}: a symbolic link; masks must be plain files")
            if entry.is_dir():
                raise UserError(f"{path / entry.name}: a subfolder; masks lie directly in {path}")
            if not entry.is_file():
                raise UserError(f"{path / entry.name}: not a plain file")
            size = entry.stat().st_size

            def read(n, p=Path(entry.path)):
                with open(p, "rb") as f:
                    return f.read(n)

            members[entry.name] = _Member(str(path / entry.name), size, read)
    return members


class MaskSubmission:
    """A checked folder or zip of masks.

    ``masks`` yields one HxW bool array (nonzero = mineral) per test row, in order,
    checking each PNG's format, mode and size as it goes; ``sha256`` (names and
    contents) is complete once ``masks`` has been consumed.
    """

    format = "mask_pngs"

    def __init__(self, masks: Iterator[np.ndarray], n_bytes: int, digest) -> None:
        self.masks = masks
        self.n_bytes = n_bytes
        self._digest = digest

    @property
    def sha256(self) -> str:
        return "sha256:" + self._digest.hexdigest()


def open_mask_submission(path: Path, *, task_id: str, test_ids: pd.Index, widths: np.ndarray,
                         heights: np.ndarray) -> MaskSubmission:
    """Check a folder or zip of masks against the test rows (names, counts, sizes).

    Everything but the PNG contents is checked before the first mask is decoded.
    """
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: no such file or folder")
    per_image = MASK_BYTES_PER_PIXEL * widths.astype(np.int64) * heights.astype(np.int64) + MASK_SLACK_BYTES
    limit = int(per_image.sum()) + CSV_SLACK_BYTES
    if path.is_dir():
        members = _folder_members(path)
    elif path.is_file() and zipfile.is_zipfile(path):
        _check_size(path, limit, f"zip of {len(test_ids)} masks")
        members = _zip_members(path)
    else:
        raise UserError(f"{path}: not a folder or a zip of PNG masks")
    total = sum(m.size for m in members.values())
    if total > limit:
        raise UserError(f"{path}: masks hold {total / 2**20:.1f} MiB, far more than {len(test_ids)} masks "
                        f"can (limit {limit / 2**20:.1f} MiB); refused")
    by_id: dict[str, _Member] = {}
    for key, member in sorted(members.items()):
        base = PurePosixPath(key).name
        if not base.lower().endswith(".png"):
            raise UserError(f"{path}: {key!r} is not a PNG mask (expected <sample_id>.png)")
        sid = base[:-4]
        if sid in by_id:
            raise UserError(f"{path}: two masks for sample {sid!r} ({by_id[sid].name}, {member.name})")
        by_id[sid] = member
    ids = pd.Index(list(by_id))
    extra = ids[test_ids.get_indexer(ids) < 0]
    if len(extra):
        raise UserError(f"{path}: {by_id[extra[0]].name!r} is not a test sample of task {task_id} "
                        f"({len(extra)} such masks); submit exactly the test samples")
    missing = test_ids[ids.get_indexer(test_ids) < 0]
    if len(missing):
        raise UserError(f"{path}: {len(missing)} test samples have no mask (first: {missing[0]}.png); "
                        f"task {task_id} allows no abstention")
    for sid, cap in zip(test_ids, per_image):
        if by_id[sid].size > cap:
            raise UserError(f"{by_id[sid].name}: {by_id[sid].size} bytes, more than a mask of its image can take")

    h = hashlib.sha256()
    for sid in sorted(by_id):
        h.update(sid.encode() + b"\0" + str(by_id[sid].size).encode() + b"\0")

    def masks() -> Iterator[np.ndarray]:
        for sid, w, hgt, cap in zip(test_ids, widths, heights, per_image):
            member = by_id[sid]
            data = member.read(int(cap) + 1)
            if len(data) > cap:
                raise UserError(f"{member.name}: decompresses past the size limit of its mask; refused")
            h.update(hashlib.sha256(data).digest())
            yield decode_mask(data, member.name, int(w), int(hgt))

    return MaskSubmission(masks(), total, h)


def decode_mask(data: bytes, name: str, width: int, height: int) -> np.ndarray:
    """PNG bytes to a bool HxW mask, refusing other formats, modes and sizes."""
    from PIL import Image, UnidentifiedImageError

    if not data.startswith(PNG_SIGNATURE):
        try:
            fmt = Image.open(io.BytesIO(data)).format
        except (UnidentifiedImageError, OSError, ValueError):
            fmt = None
        raise UserError(f"{name}: not a PNG file" + (f" (it is {fmt})" if fmt else ""))
    try:
        im = Image.open(io.BytesIO(data))
        if im.size != (width, height):
            raise UserError(f"{name}: mask is {im.size[0]}x{im.size[1]} but the image is {width}x{height}")
        if im.mode not in MASK_MODES:
            raise UserError(f"{name}: mode {im.mode}; a mask has one channel (mode L or 1), nonzero = mineral")
        arr = np.asarray(im)
    except UserError:
        raise
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise UserError(f"{name}: damaged PNG ({exc})") from None
    return arr != 0
