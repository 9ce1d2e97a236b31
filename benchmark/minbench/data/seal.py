"""Sealing: the rows a method may not read the truth of keep their public columns only.

The one rule, used wherever test rows leave the data layer (the data module's frames and
batches, ``minbench data seal``'s public dataset): of the given rows, every column the task
card does not name public (``TaskCard.truth_columns``) is blanked to the manifest's empty
value for its type (``""``, NaN, ``False``, ``0``), so a sealed frame keeps the manifest's
schema (every reader still reads it) and holds nothing of the answer.
"""

from __future__ import annotations

from typing import Iterable

import numpy as np
import pandas as pd

from minbench.data.manifest import SCHEMA

def empty_value(column: str, dtype) -> object:
    """The manifest's empty value of ``column`` (by the schema; else by ``dtype``)."""
    kind = SCHEMA.get(column, (None,))[0]
    if kind is None:
        kind = ("bool" if pd.api.types.is_bool_dtype(dtype) else "int" if pd.api.types.is_integer_dtype(dtype)
                else "float" if pd.api.types.is_float_dtype(dtype) else "str")
    return {"str": "", "float": np.nan, "bool": False, "int": 0}[kind]


def blank_rows(frame: pd.DataFrame, positions: Iterable[int], columns: Iterable[str]) -> pd.DataFrame:
    """A copy of ``frame`` whose rows at ``positions`` (0-based) hold ``columns`` empty."""
    out = frame.copy()
    positions = np.asarray(list(positions), np.int64)
    if not len(positions):
        return out
    for column in columns:
        if column in out.columns:
            out.iloc[positions, out.columns.get_loc(column)] = empty_value(column, out[column].dtype)
    return out


def seal_frame(frame: pd.DataFrame, card, keep: Iterable[int] = ()) -> pd.DataFrame:
    """``frame`` as a method of ``card``'s task may see it: the rows at ``keep`` (its
    training rows) keep the columns ``card.public_columns("train")`` names, its calibration
    rows (``card.calibration_positions``, outside ``keep``) ``card.public_columns("calibration")``'s,
    its validation rows (``card.positions(frame, "validation")``) ``card.public_columns("validation")``'s,
    every other row only ``card.public_columns("test")``'s; every other column is blanked."""
    keep = np.asarray(list(keep), np.int64)
    others = np.setdiff1d(np.arange(len(frame)), keep)
    calibration = np.intersect1d(others, card.calibration_positions(frame))
    validation = np.intersect1d(others, card.positions(frame, "validation"))
    test = np.setdiff1d(others, np.union1d(calibration, validation))
    out = blank_rows(frame, test, card.truth_columns(frame.columns, "test"))
    out = blank_rows(out, validation, card.truth_columns(frame.columns, "validation"))
    out = blank_rows(out, calibration, card.truth_columns(frame.columns, "calibration"))
    return blank_rows(out, keep, card.truth_columns(frame.columns, "train"))


def public_view(rows: pd.DataFrame, card) -> pd.DataFrame:
    """Test rows as a method may see them: only the columns ``card.public_columns("test")``
    names (in the manifest's order); every other column dropped."""
    public = set(card.public_columns("test"))
    return rows[[c for c in rows.columns if c in public]]
