"""``TaskContext``: everything a task module (``minbench.trainers``) reads from the data.

This is the one route from data to model. A data module offers it as
``dm.task_context()``; ``BaseTask.setup`` takes it from ``self.trainer.datamodule`` and hands
it to the task's ``configure_data(context)`` before any step runs (once per context, however
many ``fit``/``validate``/``predict`` calls follow). Code that drives a task without a
Lightning ``Trainer`` calls ``task.configure_data(dm.task_context())`` itself. Nothing else
passes data to a model: batches carry the images and per-row fields, the context carries the
rest (the sealed manifest, the splits, the classes, the zero-shot candidates, the
normalisation, the dataset's origin, the class-level texts).

Sealed (the protocol, ``minbench.data.seal``): the context holds no test row's truth. Its
``frame`` is the manifest as ``seal_frame`` leaves it for the task (a training row keeps the
columns ``card.public_columns("train")`` names, a calibration row, in neither split,
``card.public_columns("calibration")``'s, a test row only ``card.public_columns("test")``'s,
the rest blanked), and ``rows("test")`` has the public test columns alone. What needs the
whole manifest (the splits, the training classes, the zero-shot candidates' names) the data
module works out before it seals.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Mapping

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

    from minbench.cards import TaskCard

SPLITS = ("train", "val", "test")


@dataclass(frozen=True, eq=False)
class TaskContext:
    """What the data says about a task's rows; built by ``MineralDataModule.task_context()``.

    Attributes:
        card: the task card the data module serves.
        root: the dataset folder (the manifest's ``image_path`` / ``mask_path`` are relative to it).
        source: the dataset's origin (``dataset.json``): ``synth`` for the embedded data.
        frame: the sealed manifest (every row, the manifest's schema; a row outside the
            task's train split holds its public columns only); a batch's ``index`` is a row
            position in it.
        positions: ``train``/``val``/``test`` -> manifest row positions of the split (before
            unreadable images drop out: a batch never holds a row outside them).
        classes: the training classes, index = label (the batches' ``label``).
        mean, std: the normalisation of the batches' images (per channel).
        class_texts: label -> class-level text (``DatasetInfo.class_texts``: the embedded
            data's field-guide line per class from the mineral database). It is the only
            text besides the label a zero-shot model may use for a class it never trained
            on: written per class, never built from samples (a test image's own
            ``description`` must never reach a prediction). Classes without one (every
            class of the real release, which gives only the English name per class) are
            named by their label alone.
        cube_edge_cm: the reference cube's edge in cm, as the dataset records it
            (``DatasetInfo.cube_edge_cm``); None when it does not say.
        candidates: a zero-shot task's candidate species (sorted), the classes a
            submission chooses among: public by the card (``TaskCard.public_candidates``:
            their names, not which photo is which); empty for other tasks.
    """

    card: "TaskCard"
    root: Path
    source: str
    frame: "pd.DataFrame"
    positions: Mapping[str, np.ndarray] = field(default_factory=dict)
    classes: tuple[str, ...] = ()
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()
    class_texts: Mapping[str, str] = field(default_factory=dict)
    cube_edge_cm: float | None = None
    candidates: tuple[str, ...] = ()

    def split_positions(self, split: str) -> np.ndarray:
        """Manifest row positions of ``split`` (empty when the task has no such split)."""
        if split not in SPLITS:
            raise ValueError(f"split {split!r} is not one of {', '.join(SPLITS)}")
        return np.asarray(self.positions.get(split, ()), np.int64)

    def rows(self, split: str) -> "pd.DataFrame":
        """Manifest rows of ``split`` (index = row position); the test rows with the card's
        public test columns only."""
        rows = self.frame.iloc[self.split_positions(split)]
        if split != "test":
            return rows
        from minbench.data.seal import public_view

        return public_view(rows, self.card)

