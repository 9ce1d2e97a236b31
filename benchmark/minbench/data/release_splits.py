"""The few-shot subsets: which samples a split CSV lists, and their train/test assignment.

A split CSV is matched to ``minerals_full.csv`` by its id column, else its path column
(by header name), else by content: the column whose values are sample ids or image
paths. A split column (``split``/``subset``/``is_test``...) is followed, ``val`` rows
joining train (the manifest has train and test only; trainers hold out validation from
train). Without one, ``seeded_split`` assigns train/test.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from minbench.data import csv_schema as cs
from minbench.data.release_layout import norm_path
from minbench.errors import UserError

TEST_FRACTION = 0.2
SPLIT_SEED = 0

_TRAIN_WORDS = {"train", "training", "trn", "val", "valid", "validation", "dev"}
_TEST_WORDS = {"test", "testing", "tst", "eval", "evaluation"}
_TRUE = {"1", "true", "yes", "y", "t"}
_FALSE = {"0", "false", "no", "n", "f"}


def _unit_hash(seed: int, sample_id: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{seed}:{sample_id}".encode()).digest()[:8], "big")


def seeded_split(ids: list[str], species: list[str], *, test_fraction: float = TEST_FRACTION,
                 seed: int = SPLIT_SEED) -> dict[str, str]:
    """Deterministic stratified train/test split.

    Per species, the ``test_fraction`` of samples with the smallest ``sha256(seed:id)``
    are test (at least one when the species has two or more; a single sample stays in
    train). Depends only on the ids, never on row order.
    """
    by_class: dict[str, list[str]] = {}
    for sid, sp in zip(ids, species):
        by_class.setdefault(sp, []).append(sid)
    out = {}
    for members in by_class.values():
        members = sorted(set(members), key=lambda s: (_unit_hash(seed, s), s))
        n_test = min(max(1, round(len(members) * test_fraction)), len(members) - 1) if len(members) > 1 else 0
        for i, sid in enumerate(members):
            out[sid] = "test" if i < n_test else "train"
    return out


def _split_value(raw: str, col_name: str, where: str) -> str:
    v = raw.strip().lower()
    if col_name in ("is_test", "test"):
        if v in _TRUE:
            return "test"
        if v in _FALSE:
            return "train"
    elif v in _TRAIN_WORDS:
        return "train"
    elif v in _TEST_WORDS:
        return "test"
    raise UserError(f"{where}: split value {raw!r} in column {col_name!r} is not train/test")


def _key_column(data: cs.CsvData, names: list[str], ids: set[str], path_to_id: dict[str, str],
                full_name: str) -> list[str | None]:
    """Each row's sample id (None when it names none)."""
    def as_ids(values: list[str], by_path: bool) -> list[str | None]:
        if by_path:
            return [path_to_id.get((norm_path(v) or "").lower()) for v in values]
        return [v if v in ids else None for v in values]

    for alias, by_path in [(a, False) for a in cs.ID_ALIASES] + [(a, True) for a in cs.PATH_ALIASES]:
        if alias in names:
            return as_ids(cs.column(data, names.index(alias)), by_path)
    best, best_hits = None, 0
    for idx in range(min(len(data.rows[0]), 20)):
        values = cs.column(data, idx)
        for by_path in (False, True):
            cand = as_ids(values, by_path)
            hits = sum(c is not None for c in cand)
            if hits > best_hits:
                best, best_hits = cand, hits
    if best is None or best_hits < len(data.rows) / 2:
        raise UserError(f"{data.path}: no column holds the sample ids or image paths of {full_name}")
    return best


def read_split_csv(path: Path, ids: set[str], path_to_id: dict[str, str], *, full_name: str = "minerals_full.csv"
                   ) -> tuple[list[str], list[str] | None, list[str]]:
    """The sample ids a split CSV lists (file order, deduplicated), their train/test values
    when the file has a split column (else None), and warnings."""
    aliases = set(cs.ID_ALIASES) | set(cs.PATH_ALIASES) | set(cs.SPLIT_ALIASES) | {
        a for _, al in cs.FULL_FIELDS for a in al}
    data = cs.read_csv(path, aliases)
    if not data.rows:
        raise UserError(f"{path}: no rows")
    cs.check_width(data, len(data.header) if data.header else len(data.rows[0]))
    names = [cs.norm_header(h) for h in data.header] if data.header else []
    key = _key_column(data, names, ids, path_to_id, full_name)
    warnings = list(data.warnings)
    unknown = sum(k is None for k in key)
    if unknown:
        warnings.append(f"{path}: {unknown} rows name no sample of {full_name}; ignored")
    split = None
    for alias in cs.SPLIT_ALIASES:
        if alias in names:
            col = cs.column(data, names.index(alias))
            split = [_split_value(v, alias, f"{path} line {ln}") for v, ln in zip(col, data.lines)]
            break
    seen: dict[str, str | None] = {}
    for i, sid in enumerate(key):
        if sid is not None and sid not in seen:
            seen[sid] = split[i] if split else None
    return list(seen), ([seen[s] for s in seen] if split else None), warnings
