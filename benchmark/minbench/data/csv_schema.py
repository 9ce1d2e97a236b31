"""Reading the release's CSV files: encoding, truncation, and which column is which.

``minerals_full.csv`` has 15 columns in a documented order. Its header (when it has
one) is matched by name with aliases; columns no name matched fall back to their
documented position, and every fallback is reported. Policy for damaged files:

- not UTF-8 (a UTF-8 BOM is fine): ``UserError`` naming the file and the byte offset;
- a row in the middle with the wrong number of fields: ``UserError`` naming file and line;
- the *last* row cut short (or ending inside a quoted field): the file was truncated,
  e.g. by an interrupted download; the row is skipped and a warning names its line.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from pathlib import Path

from minbench.errors import UserError

# The documented order of minerals_full.csv: (field, header aliases). Fields starting
# with "_" are kept for the position only (the release leaves them empty).
FULL_FIELDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("sample_id", ("id", "sample_id", "sampleid", "fmm_id", "uid")),
    ("path", ("path", "image_path", "img_path", "filepath", "file_path", "file", "filename", "path_final")),
    ("capture_height", ("height", "orig_height", "original_height", "h")),
    ("capture_width", ("width", "orig_width", "original_width", "w")),
    ("ru_name", ("ru_name", "name_ru", "russian_name", "ru_title")),
    ("ru_species", ("ru_species", "species_ru", "ru_mineral", "mvid", "ru_vid")),
    ("ru_variety", ("ru_variety", "variety_ru", "ru_var")),
    ("ru_satellites", ("ru_satellites", "satellites_ru", "ru_sat")),
    ("_empty_1", ("en_species",)),
    ("en_name", ("en_name", "name_en", "english_name", "en_title", "name")),
    ("_empty_2", ("en_variety",)),
    ("en_satellites", ("en_satellites", "satellites_en", "en_sat", "satellites")),
    ("en_description", ("en_description", "description_en", "en_desc", "description")),
    ("text_boxes", ("text_boxes", "text_bboxes", "craft_boxes")),
    ("mineral_boxes", ("mineral_boxes", "mineral_bboxes", "detected_data", "owl_boxes")),
)
FULL_REQUIRED = ("sample_id", "path", "en_name")

SIZE_FIELDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("path", ("path_final", "path", "image_path", "img_path", "file", "filename")),
    ("ru_species", ("mvid", "ru_species", "ru_name")),
    ("size_cm", ("sizesm", "size_cm", "size", "size_sm")),
)
SIZE_REQUIRED = ("path", "size_cm")

ID_ALIASES = ("id", "sample_id", "sampleid", "fmm_id", "uid")
PATH_ALIASES = ("path", "image_path", "img_path", "path_final", "filepath", "file_path", "file", "filename")
SPLIT_ALIASES = ("split", "subset", "set", "part", "fold", "stage", "is_test", "test")


def norm_header(name: str) -> str:
    """``' Ru-Variety '`` -> ``'ru_variety'``."""
    return re.sub(r"[\s\-.]+", "_", name.strip().lstrip("\ufeff").lower()).strip("_")


@dataclass
class CsvData:
    """A CSV file read whole: header (None when headerless), rows, their line numbers."""

    path: Path
    header: list[str] | None
    rows: list[list[str]]
    lines: list[int]
    warnings: list[str] = field(default_factory=list)


def decode_text(path: Path) -> str:
    """The file as text: UTF-8, with or without a BOM; ``UserError`` otherwise."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UserError(f"{path}: cannot read ({exc.strerror})") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}: not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start}); "
                        "re-save it as UTF-8") from None


def read_rows(path: Path) -> tuple[list[list[str]], list[int], bool]:
    """All non-blank records with their end line numbers; True when the last record hit EOF
    inside a quoted field (a truncated file)."""
    text = decode_text(path)
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    rows, lines = [], []
    cut = False
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            if "unexpected end of data" in str(exc):
                cut = True
                break
            raise UserError(f"{path} line {reader.line_num}: malformed CSV ({exc})") from None
        if row and any(cell.strip() for cell in row):
            rows.append(row)
            lines.append(reader.line_num)
    return rows, lines, cut


def _looks_like_header(row: list[str], aliases: set[str]) -> bool:
    names = {norm_header(c) for c in row}
    if any(re.search(r"\.(jpe?g|png)$", c.strip(), re.I) for c in row):
        return False
    return len(names & aliases) >= 1


def read_csv(path: Path, aliases: set[str]) -> CsvData:
    """Read a CSV, deciding whether its first row is a header (it names a known column)."""
    rows, lines, cut = read_rows(path)
    header = None
    if rows and _looks_like_header(rows[0], aliases):
        header, rows, lines = rows[0], rows[1:], lines[1:]
    data = CsvData(path=path, header=header, rows=rows, lines=lines)
    if cut:
        data.warnings.append(f"{path}: the last row (line {lines[-1] + 1 if lines else 1}) ends inside a "
                             "quoted field: the file is truncated; row skipped")
    return data


def check_width(data: CsvData, width: int) -> None:
    """Enforce ``width`` fields per row; a short last row is a truncation (skipped, warned)."""
    if data.rows and len(data.rows[-1]) < width:
        data.warnings.append(f"{data.path}: the last row (line {data.lines[-1]}) has {len(data.rows[-1])} of "
                             f"{width} fields: the file is truncated; row skipped")
        data.rows.pop()
        data.lines.pop()
    for row, line in zip(data.rows, data.lines):
        if len(row) != width:
            raise UserError(f"{data.path} line {line}: {len(row)} fields, expected {width}"
                            + (" (as many as the header)" if data.header else ""))


def map_columns(data: CsvData, fields: tuple[tuple[str, tuple[str, ...]], ...], required: tuple[str, ...],
                *, positional: bool) -> dict[str, int | None]:
    """Field -> column index, by header name (aliases), else by documented position.

    ``positional``: the file has a documented column order (``fields``), used for a
    headerless file and for header names that did not match. Reports each fallback in
    ``data.warnings``; a required field with no column raises a ``UserError``.
    """
    n = len(fields)
    if data.header is None:
        if not positional:
            raise UserError(f"{data.path}: no header row naming the columns "
                            f"({', '.join(fields[i][1][0] for i in range(len(fields)) if fields[i][0] in required)})")
        check_width(data, n)
        data.warnings.append(f"{data.path}: no header row; columns taken by their documented position ({n})")
        return {name: i for i, (name, _) in enumerate(fields)}

    names = [norm_header(h) for h in data.header]
    check_width(data, len(names))
    mapping: dict[str, int | None] = {}
    taken: set[int] = set()
    for name, aliases in fields:
        idx = next((names.index(a) for a in aliases if a in names and names.index(a) not in taken), None)
        mapping[name] = idx
        if idx is not None:
            taken.add(idx)
    unmatched = [name for name, _ in fields if mapping[name] is None and not name.startswith("_")]
    if not unmatched:
        return mapping
    if positional and len(names) == n:
        # Same width as the documented layout: trust positions for what names missed.
        fell_back = []
        for name in unmatched:
            pos = [f for f, _ in fields].index(name)
            if pos not in taken:
                mapping[name] = pos
                taken.add(pos)
                fell_back.append(f"{name} <- column {pos + 1} {data.header[pos]!r}")
        if fell_back:
            data.warnings.append(f"{data.path}: header names did not match, taken by position: "
                                 + "; ".join(fell_back))
        unmatched = [name for name in unmatched if mapping[name] is None]
    missing = [name for name in unmatched if name in required]
    if missing:
        want = dict(fields)[missing[0]]
        raise UserError(f"{data.path}: no column for '{missing[0]}' (looked for header "
                        f"{', '.join(want)}; header has {', '.join(repr(h) for h in data.header)}"
                        + (f"; and it has {len(names)} columns, not the documented {n}" if positional else "") + ")")
    if unmatched:
        data.warnings.append(f"{data.path}: no column for {', '.join(unmatched)}; left empty")
    return mapping


def column(data: CsvData, idx: int | None) -> list[str]:
    """One column's values, stripped (all '' when the column is absent)."""
    if idx is None:
        return [""] * len(data.rows)
    return [row[idx].strip() for row in data.rows]
