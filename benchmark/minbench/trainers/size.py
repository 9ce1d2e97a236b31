"""Size methods behind a LightningModule: each measures every photo on its own.

``PhotoSizeTask`` is what they share: nothing is trained (``trainable = False``);
``predict_step`` and ``test_step`` call the method's ``measure`` on each native-resolution
photo of the batch (the data module with ``image_size=None``), one row per photo; ``test``
gathers them (``test_rows``); no metric is reported here: the numbers come from the scorer,
on the written submission (``minbench.pipelines.size``). Photos of a batch are measured on
a small thread pool: OpenCV and NumPy release the GIL in their heavy loops, so threads use
the cores the data loader leaves free. Two methods:

- ``SizeTask``: the zero-shot reference-cube estimator (``minbench.models.size``) and, side
  by side, the authors' contour rule (``minbench.models.size_authors``);
- ``ExtentSizeTask``: the size reference without the cube: the extent of the largest
  non-backdrop blob in the frame, mapped to centimetres by a power law fitted on the
  dataset's public calibration photos (``minbench.models.size.extent``).
"""

from __future__ import annotations

import math
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import torch

from minbench.errors import UserError
from minbench.models.size_authors import AuthorsRule, authors_estimate
from minbench.models.size import FALLBACK_CUBE_EDGE_CM, SizeConfig, SizeEstimator
from minbench.dist import gather_objects
from minbench.trainers.base import BaseTask

BOX_COLUMNS = ("mineral_boxes", "text_boxes")


class PhotoSizeTask(BaseTask):
    """A size method that measures each photo on its own (see the module docstring).

    Subclasses build their model in ``configure_models`` and implement ``measure`` and
    ``describe``.

    Args:
        task: a task card of kind ``size``.
        threads: photos measured at once within a batch (0 = one per CPU core).
    """

    trainable = False

    def __init__(self, task: str = "size", *, threads: int = 0) -> None:
        super().__init__(task)
        if self.card.kind != "size":
            raise UserError(f"model: {type(self).__name__} serves size tasks; --task {task} is a "
                            f"{self.card.kind} task")
        self._rows: list[dict[str, Any]] = []
        self._pool: ThreadPoolExecutor | None = None

    def measure(self, image, index: int | None = None) -> tuple[Any, Any, float]:
        """(our ``SizeEstimate``, the authors' estimate or None, our time in ms) for one photo."""
        raise NotImplementedError(f"{type(self).__name__} must implement measure")

    def describe(self) -> dict[str, Any]:
        """What the run's ``comparison.json`` records of the method beside its scores."""
        return {}

    def forward(self, images: list) -> list:
        """Our estimates for a list of photos (uint8 HxWx3)."""
        return [self.measure(img)[0] for img in images]

    def _threads(self) -> int:
        n = int(self.hparams.threads)
        if n > 0:
            return n
        import os

        return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)

    def _map(self, fn, items: list) -> list:
        threads = min(self._threads(), len(items))
        if threads <= 1:
            return [fn(*it) for it in items]
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=self._threads(), thread_name_prefix="size")
        return list(self._pool.map(lambda it: fn(*it), items))

    def _batch_rows(self, batch: dict[str, Any]) -> list[dict[str, Any]]:
        images = batch["image"]
        index = _as_list(batch.get("index"), len(images))
        sample_ids = list(batch.get("sample_id") or [None] * len(images))
        results = self._map(self.measure, list(zip(images, index)))
        rows = []
        for i, (est, auth, ms) in enumerate(results):
            # the photo's answer is never here: the pipeline reads it through the scorer once
            # the submission is written (``pipelines.size``)
            row = {"sample_id": sample_ids[i], "index": None if index[i] is None else int(index[i]),
                   **est.to_row(), "ms": ms}
            if auth is not None:
                row.update(authors_size_cm=auth.size_cm, authors_px_per_cm=auth.px_per_cm,
                           authors_reason=auth.reason)
            rows.append(row)
        return rows

    def predict_step(self, batch: dict[str, Any], batch_idx: int, dataloader_idx: int = 0) -> list[dict]:
        return self._batch_rows(batch)

    def on_test_epoch_start(self) -> None:
        self._rows = []

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._rows.extend(self._batch_rows(batch))

    def on_test_epoch_end(self) -> None:
        self.test_rows = dedupe(gather_objects(self._rows))

    def teardown(self, stage: str) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None


class SizeTask(PhotoSizeTask):
    """Specimen size in cm from the reference cube, per photo, with the reason of each abstention.

    Args:
        task: a task card of kind ``size``.
        cube_edge_cm: the reference cube's edge in cm; None (the default recipe's) = the
            dataset's (``dataset.json``'s ``cube_edge_cm``, reaching the task as
            ``TaskContext.cube_edge_cm``), else ``FALLBACK_CUBE_EDGE_CM`` (the authors'
            script's). A number overrides the dataset's (a change to the recipe, recorded
            with the run).
        extent: what is measured: ``longest_side`` of the specimen's box (the ground
            truth's definition), ``max_feret``, ``diagonal``, ``width`` or ``height``.
        estimator: further ``SizeConfig`` settings (``work_size``, ``min_face_score`` ...).
        release_boxes: use the release's ``mineral_boxes`` / ``text_boxes`` columns (read
            from the data module's ``task_context()``, see ``BaseTask``):
            ``auto`` (only when the dataset is not the embedded ``synth``, whose boxes are
            ground truth, not detector outputs), ``true`` or ``false``.
        compare_authors: also run the authors' contour rule on every photo.
        threads: photos measured at once within a batch (0 = one per CPU core).
    """

    def __init__(self, task: str = "size", *, cube_edge_cm: float | None = None, extent: str = "longest_side",
                 estimator: dict[str, Any] | None = None, release_boxes: str | bool = "auto",
                 compare_authors: bool = True, threads: int = 0) -> None:
        if str(release_boxes).lower() not in ("auto", "true", "false"):
            raise UserError(f"model.init_args.release_boxes: {release_boxes!r} is not one of auto, true, false")
        super().__init__(task, threads=threads)
        self._boxes: dict[int, dict[str, str]] = {}

    def configure_models(self) -> None:
        self._configure_estimator(self.cube_edge_cm())
        # A LightningModule wants a module; the estimator holds no weights.
        self.model = torch.nn.Identity()

    def cube_edge_cm(self, context=None) -> float:
        """The cube edge (cm) the estimates use: the recipe's number, else the dataset's
        (``context.cube_edge_cm``), else ``FALLBACK_CUBE_EDGE_CM``."""
        edge = self.hparams.cube_edge_cm
        if edge is None and context is not None:
            edge = context.cube_edge_cm
        return FALLBACK_CUBE_EDGE_CM if edge is None else float(edge)

    def _configure_estimator(self, cube_edge_cm: float) -> None:
        hp = self.hparams
        settings = {**(hp.estimator or {}), "cube_edge_cm": cube_edge_cm, "extent": hp.extent}
        self.config = SizeConfig.from_dict(settings, where="model.init_args.estimator")
        self.estimator = SizeEstimator(self.config)
        self.authors_rule = AuthorsRule(cube_edge_cm=self.config.cube_edge_cm)

    # --- inputs that are not in the batch ---------------------------------------------------
    def configure_data(self, context) -> None:
        """Take the dataset's cube edge (unless the recipe sets one) and remember the rows'
        release boxes (by manifest position) when the setting allows."""
        super().configure_data(context)
        edge = self.cube_edge_cm(context)
        if edge != self.config.cube_edge_cm:
            self._configure_estimator(edge)
        mode = str(self.hparams.release_boxes).lower()
        use = mode == "true" or (mode == "auto" and context.source != "synth")
        self._boxes = {}
        if not use:
            return
        frame = context.frame
        for pos, (mb, tb) in enumerate(zip(frame["mineral_boxes"], frame["text_boxes"])):
            if mb or tb:
                self._boxes[pos] = {"mineral_boxes": mb or None, "text_boxes": tb or None}

    @property
    def release_box_rows(self) -> int:
        """How many manifest rows give the estimator release boxes."""
        return len(self._boxes)

    # --- the measurement ---------------------------------------------------------------------
    def measure(self, image, index: int | None = None) -> tuple[Any, Any, float]:
        """(our estimate, the authors' estimate or None, our time in ms) for one photo."""
        boxes = self._boxes.get(int(index), {}) if index is not None else {}
        started = time.perf_counter()
        est = self.estimator.estimate(image, **boxes)
        ms = (time.perf_counter() - started) * 1000.0
        auth = None
        if self.hparams.compare_authors:
            try:
                auth = authors_estimate(np.asarray(image), est.specimen_bbox, self.authors_rule,
                                        exclude_boxes=est.label_boxes)
            except Exception as exc:  # noqa: BLE001 - the reference rule must not stop a run
                from minbench.models.size_authors import AuthorsEstimate

                auth = AuthorsEstimate(reason=f"failed ({type(exc).__name__})")
        return est, auth, ms

    def describe(self) -> dict[str, Any]:
        return {"authors_rule": "4-corner contour, perimeter and squareness thresholds, edge = perimeter/4 = "
                                f"{self.authors_rule.cube_edge_cm} cm, size truncated to whole cm "
                                "(minbench.models.size_authors); same specimen boxes as ours",
                "cube_edge_cm": self.config.cube_edge_cm, "extent": self.config.extent}


class ExtentSizeTask(PhotoSizeTask):
    """The size reference without the cube (``minbench.models.size.extent``): the longest
    side of the largest non-backdrop blob's box over the photo's long side, in centimetres
    by a power law fitted (least squares of log size on log extent) on the calibration
    photos: the rows outside the task's test split with a recorded ``size_cm``, public by
    the card (``inputs.calibration``; the rows ``scoring.floors.median_size`` takes). It
    never reads the cube. A photo without a blob abstains.

    Args:
        task: a task card of kind ``size``.
        threads: photos measured at once (0 = one per CPU core).
    """

    def __init__(self, task: str = "size", *, threads: int = 0) -> None:
        super().__init__(task, threads=threads)

    def configure_models(self) -> None:
        self.model = torch.nn.Identity()  # a LightningModule wants a module; the fit holds no weights
        self.law = None

    def configure_data(self, context) -> None:
        """Fit the power law on the dataset's calibration photos (refused, before any photo
        is read, when the dataset has none)."""
        from minbench.models.size.extent import file_extent, fit_power_law

        super().configure_data(context)
        frame = context.frame
        rows = context.card.calibration_positions(frame)
        sizes = frame["size_cm"].to_numpy(np.float64)[rows]
        rows, sizes = rows[np.isfinite(sizes)], sizes[np.isfinite(sizes)]
        if not len(rows):
            raise UserError(f"{context.root}: {type(self).__name__} fits its power law on calibration photos (rows "
                            f"outside the {context.card.id} test split with a recorded size_cm) and this dataset "
                            "has none")
        extents = self._map(file_extent, [(context.root / path,) for path in frame["image_path"].to_numpy()[rows]])
        try:
            self.law = fit_power_law(extents, sizes)
        except ValueError as exc:
            raise UserError(f"{context.root}: {type(self).__name__} calibration: {exc}") from None

    def measure(self, image, index: int | None = None) -> tuple[Any, Any, float]:
        from minbench.models.size.extent import estimate_size

        if self.law is None:
            raise RuntimeError("ExtentSizeTask is not calibrated: run it with a Trainer and the data module, "
                               "or call configure_data(dm.task_context()) first")
        started = time.perf_counter()
        est = estimate_size(image, self.law)
        return est, None, (time.perf_counter() - started) * 1000.0

    def describe(self) -> dict[str, Any]:
        law = self.law
        return {"method": "extent of the largest non-backdrop blob (longest box side / photo long side), "
                          "size = exp(intercept) * extent ** slope",
                "calibration": None if law is None else {"photos": law.n, "slope": law.slope,
                                                         "intercept": law.intercept, "rmse_log": law.rmse_log}}


def dedupe(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Keep the first row of each manifest index (a DistributedSampler pads with repeats)."""
    from minbench.data.datasets import first_occurrences

    keys = [r.get("index") if r.get("index") is not None else r.get("sample_id") for r in rows]
    return [r for r, keep in zip(rows, first_occurrences(keys)) if keep]


def _as_list(value, n: int) -> list:
    if value is None:
        return [None] * n
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().tolist()
    return list(value)
