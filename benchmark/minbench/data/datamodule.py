"""The shared data module: one ``LightningDataModule`` that feeds every task from the manifest.

Contract (the task modules and pipelines code against this)::

    from minbench.data.datamodule import MineralDataModule
    dm = MineralDataModule(data_dir, task="fewshot-10", image_size=224, batch_size=32, num_workers=2,
                           val_fraction=0.1, balanced=False, limit=None, seed=0, augment=True,
                           cache_dir=None)   # default cache: minbench.paths.cache_dir()/"images"
    dm.setup("fit")   # or "validate"/"test"/"predict"
    dm.classes        # list[str]: the training classes (sorted), index = label
    dm.num_classes
    dm.test_frame     # test rows in dataloader order (index = row position), public columns only
    dm.frame          # the sealed manifest; dm.positions: split -> manifest row positions chosen
                      # (before bad images drop out); dm.frame_of(split): rows as served
    dm.skipped        # bad images among this module's rows: position, sample_id, image_path, reason
    dm.task_context() # what a task module reads (minbench.data.context.TaskContext): the one
                      # route from data to model, taken by BaseTask.setup from trainer.datamodule

Sealed (``minbench.data.seal``): the module works out from the whole manifest what it must
(splits, training classes and labels, public zero-shot candidates, the cache's fingerprint)
and keeps only ``seal_frame(manifest, card, keep=train rows)`` as ``dm.frame`` /
``TaskContext.frame``; test rows (``test_frame``, ``frame_of("test")``,
``TaskContext.rows("test")``) have ``card.public_columns("test")`` only, and test/predict
batches no truth (no label, mask, size, scale or box): that is the scorer's.

Rows: the task card's train and test split (``card.positions(frame, "train"|"test")``;
the rule of each kind is in ``minbench.cards``):

- classification: a test species without any train image is a ``UserError``.
- zeroshot: train = rows whose species is NOT among the zero-shot species (the disjoint
  classes a zero-shot baseline pre-trains on).
- segmentation / size: test only; fitting is a ``UserError``. Their ``classes`` are the
  species of the test rows (labels for CAMs), unless ``classes=`` gives a classifier's own
  list.
- validation: carved from train, stratified by species, seeded (``val_fraction``; a class
  keeps at least one train image); recorded in ``dm.split_record`` and as JSON in
  ``<cache_dir>/splits/``. ``val_fraction=0`` means no validation loader.
- ``limit``: an int caps each split at that many rows, a float in (0, 1] keeps that
  fraction; train and validation rows are picked round-robin over classes (seeded), so
  classes stay covered; test rows, whose labels are sealed, at random (seeded).

Batches after ``on_after_batch_transfer`` (on the model's device), a dict:

- ``image`` float32 Bx3xSxS in ``channels_last`` memory layout, normalised with ImageNet
  ``dm.mean`` / ``dm.std``;
  ``index`` int64 (row position in the manifest); ``sample_id`` list[str];
  train and validation batches add ``label`` int64 (the class index; -1 when the species
  is not a training class). Test and predict batches carry no truth: no ``label``.
- segmentation and size add ``orig_size`` int64 Bx2 (H, W of the upright original image).
  Their truth (masks; sizes, scales, boxes) is never served: they have test rows only.
- Eval/predict: the whole image resized to SxS (no crop), so a CAM maps back exactly.
  Train (``augment=True``): random resized crop, flips, rotation, colour jitter, grayscale,
  as batched ops on the device (``minbench.data.augment``), deterministic given
  ``(seed, epoch, batch index, rank)``.
- ``image_size=None`` (the size task's classical estimator): no resize, no cache, no
  augmentation; ``image`` (and ``mask``) are lists of HxWx3 (HxW) uint8 numpy arrays at
  native resolution, the other keys as above (collated), ``orig_size`` always present.

Data path: images are decoded once into a uint8 cache (``minbench.data.cache``), built in
``prepare_data`` (rank 0) or ``setup``. Bad images (corrupt, truncated, decompression bomb,
float) are skipped there, up front, with their labels, and listed in ``dm.skipped`` and in
``skipped.csv`` beside the cache; other odd images are converted (``minbench.data.decode``).
Cached batches are read in the calling process (see ``loader_workers``: a worker process
costs more to hand a batch over than reading it does); ``num_workers`` processes decode
(the cache build, ``image_size=None``) and run a ``cpu_transform``.

DDP: the training sampler shards itself by rank (each rank its own part of the same seeded
order); eval loaders use Lightning's automatic ``DistributedSampler``, which pads the split
by repeating up to world_size-1 rows: gather (``index``, prediction) and keep
``minbench.data.datasets.first_occurrences(index)`` so metrics equal single-process ones.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader

from minbench.cards import get_card
from minbench.data.augment import IMAGENET_MEAN, IMAGENET_STD, AugmentConfig, eval_transform, train_transform
from minbench.data.cache import ImageCache, default_root
from minbench.data.context import TaskContext
from minbench.data.datasets import CachedImages, EpochSampler, NativeImages, passthrough_collate
from minbench.data.public import candidate_names
from minbench.data.row_picks import carve_validation, is_valid_limit, limit_rows
from minbench.errors import UserError
from minbench.io import storage_errors, write_json_atomic

log = logging.getLogger("minbench.data")

_STAGES = ("fit", "validate", "test", "predict", None)


class MineralDataModule(L.LightningDataModule):
    """Serves any task and split of a manifest; see the module docstring for the contract."""

    mean = IMAGENET_MEAN
    std = IMAGENET_STD

    def __init__(self, data_dir: str | Path | None = None, task: str = "fewshot-10",
                 image_size: int | None = 224, batch_size: int = 32, num_workers: int = 2,
                 val_fraction: float = 0.1, balanced: bool = False, limit: int | float | None = None,
                 seed: int = 0, augment: bool = True, cache_dir: str | Path | None = None, *,
                 classes: list[str] | None = None, augment_config: AugmentConfig | None = None,
                 cpu_transform=None, max_pixels: int | None = None, pin_memory: bool | None = None,
                 build_workers: int | None = None):
        super().__init__()
        self.card = get_card(task)
        if image_size is not None and (not isinstance(image_size, int) or image_size < 8):
            raise UserError(f"image_size {image_size!r}: must be an integer >= 8 (or None for native size)")
        if not isinstance(batch_size, int) or batch_size < 1:
            raise UserError(f"batch_size {batch_size!r}: must be a positive integer")
        if not isinstance(num_workers, int) or num_workers < 0:
            raise UserError(f"num_workers {num_workers!r}: must be an integer >= 0")
        if not 0 <= float(val_fraction) < 1:
            raise UserError(f"val_fraction {val_fraction!r}: must be in [0, 1)")
        if limit is not None and not is_valid_limit(limit):
            raise UserError(f"limit {limit!r}: must be a positive integer or a fraction in (0, 1]")
        self.data_dir = data_dir
        self.task = task
        self.image_size = image_size
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.val_fraction = float(val_fraction)
        self.balanced = bool(balanced)
        self.limit = limit
        self.seed = int(seed)
        self.augment = bool(augment)
        self.cache_root = Path(cache_dir) if cache_dir is not None else default_root()
        self.augment_config = augment_config or AugmentConfig()
        self.cpu_transform = cpu_transform
        self.max_pixels = max_pixels
        self.pin_memory = torch.cuda.is_available() if pin_memory is None else bool(pin_memory)
        # decoding is CPU-bound: more builder processes than cores only thrash
        self.build_workers = min(num_workers, os.cpu_count() or 1) if build_workers is None else build_workers
        self._given_classes = sorted(classes) if classes is not None else None
        self._loaded = False
        self._datasets: dict[str, Any] = {}
        self._batch_counter = (-1, 0)  # (epoch, next batch idx): fallback outside a fit loop

    # ---- manifest and splits -------------------------------------------------------------
    def _load(self) -> None:
        if self._loaded:
            return
        from minbench.data.locate import resolve_dataset
        from minbench.data.manifest import read_manifest

        from minbench.data.manifest import fingerprint
        from minbench.data.seal import seal_frame

        self.dataset_dir = resolve_dataset(self.data_dir)
        # the whole manifest lives in this method only: what follows keeps the sealed one
        manifest = read_manifest(self.dataset_dir)
        train = self._make_splits(manifest)
        self.frame = seal_frame(manifest, self.card, keep=train)
        self.cache = ImageCache(self.dataset_dir, self.frame, self.image_size, root=self.cache_root,
                                max_pixels=self.max_pixels, fingerprint_=fingerprint(manifest))
        self._carve_and_limit(train, self.card.positions(manifest, "test", where=str(self.dataset_dir)),
                              self.card.positions(manifest, "validation"))
        self._loaded = True

    def _make_splits(self, manifest: pd.DataFrame) -> np.ndarray:
        """Classes, labels (of training rows only) and candidates from the whole manifest;
        returns the train rows (before the validation carve)."""
        card = self.card
        species = manifest["species"].to_numpy()
        # the card owns the split rule; an empty test split is its UserError
        train = card.positions(manifest, "train", where=str(self.dataset_dir))
        test = card.positions(manifest, "test", where=str(self.dataset_dir))
        if self._given_classes is not None:
            self.classes = self._given_classes
        else:
            source = train if card.has_train else test
            self.classes = sorted(set(species[source].tolist()))
        lookup = {c: i for i, c in enumerate(self.classes)}
        labels = np.array([lookup.get(s, -1) for s in species], np.int64)
        if card.kind == "classification":
            # a public dataset's sealed test rows have no species: nothing to check there
            unseen = sorted({s for s in species[test][labels[test] < 0].tolist() if s})
            if unseen:
                more = f" and {len(unseen) - 3} more" if len(unseen) > 3 else ""
                raise UserError(f"{self.dataset_dir}: task {self.task!r}: test class "
                                f"{', '.join(repr(u) for u in unseen[:3])}{more} has no train image")
        self.labels = np.full(len(manifest), -1, np.int64)  # outside the train split: none (-1)
        self.labels[train] = labels[train]
        # the card makes a zero-shot task's candidate NAMES public (not which photo is which)
        self.candidates = candidate_names(self.dataset_dir, card, manifest) if card.public_candidates else ()
        return train

    def _carve_and_limit(self, train: np.ndarray, test: np.ndarray, validation: np.ndarray) -> None:
        train, val = self._carve_val(train)
        if self.card.validation is not None:  # a test-only card's validation part: the card's rule
            val = validation
        self.positions = {"train": self._apply_limit(train, 1), "val": self._apply_limit(val, 2),
                          "test": self._apply_limit(test, 3)}  # test: no labels, a random pick

    def _carve_val(self, train: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Stratified, seeded validation carve (``row_picks.carve_validation``), recorded."""
        if not len(train) or self.val_fraction == 0:
            self.split_record = None
            return train, np.array([], np.int64)
        train, val = carve_validation(train, self.labels[train], self.val_fraction, self.seed)
        self.split_record = {
            "task": self.task, "seed": self.seed, "val_fraction": self.val_fraction,
            "dataset_fingerprint": self.cache.fingerprint, "method": "stratified by species, seeded",
            "n_train": int(len(train)), "n_val": int(len(val)),
            "val_sample_ids": self.frame["sample_id"].to_numpy()[val].tolist(),
        }
        return train, val

    @property
    def split_path(self) -> Path:
        """Where the validation carve is recorded (under ``cache_dir``)."""
        fp = self.cache.fingerprint.split(":")[-1][:20]
        return self.cache_root / "splits" / f"{fp}-{self.task}-val{self.val_fraction:g}-seed{self.seed}.json"

    def _apply_limit(self, positions: np.ndarray, salt: int) -> np.ndarray:
        return limit_rows(positions, self.labels[positions], self.limit, self.seed, salt)

    # ---- Lightning hooks -------------------------------------------------------------------
    def _needed(self, stage: str | None) -> list[str]:
        test_only = not self.card.has_train
        if stage == "validate" and self.card.validation is not None:
            return ["val"]  # a test-only card's validation part (its masks are public)
        if stage in ("fit", "validate") and test_only:
            raise UserError(f"--task {self.task}: a test-only task has no training split; "
                            f"it cannot be used to {stage} (train a classifier on a few-shot task)")
        if stage == "fit":
            return ["train", "val"]
        if stage == "validate":
            return ["val"]
        if stage in ("test", "predict"):
            return ["test"]
        if stage is None:
            return ["test"] if test_only else ["train", "val", "test"]
        raise UserError(f"stage {stage!r}: not one of fit, validate, test, predict")

    def prepare_data(self) -> None:
        """Build the image cache for every split this module can serve (Lightning: rank 0)."""
        self._load()
        self._build([p for name in self._needed(None) for p in self.positions[name]])

    def _build(self, positions) -> None:
        if not len(positions):
            return
        built = self.cache.ensure(np.asarray(positions, np.int64), workers=self.build_workers, progress=True)
        if built:
            log.info("image cache %s: decoded %d images", self.cache.folder, built)

    def setup(self, stage: str | None = None) -> None:
        self._load()
        names = self._needed(stage)
        if stage == "fit" and not len(self.positions["train"]):
            raise UserError(f"{self.dataset_dir}: task {self.task!r} has no train rows")
        self._build([p for n in names for p in self.positions[n]])
        if "val" in names and self.split_record is not None and not self.split_path.is_file():
            with storage_errors(self.split_path.parent, "the validation split record",
                                "point MINBENCH_HOME (or cache_dir) at another folder"):
                write_json_atomic(self.split_path, self.split_record)
        for name in names:
            if name not in self._datasets:
                self._datasets[name] = self._make_dataset(name)

    def _make_dataset(self, name: str):
        pos = self.positions[name]
        ok = self.cache.ready(pos)
        bad = pos[~ok]
        if len(bad):
            log.warning("%s split of %s: %d image(s) skipped (see %s): %s", name, self.task, len(bad),
                        self.cache.report_file, ", ".join(self.frame["image_path"].iloc[bad[:5]]))
        pos = pos[ok]
        # a test row's truth is never served; a photo's own size is public (answers map back to it)
        labels = None if name == "test" else self.labels[pos]
        kw = dict(with_orig_size=self.card.kind in ("segmentation", "size"))
        if self.image_size is None:
            return NativeImages(self.dataset_dir, self.frame, pos, labels, max_pixels=self.max_pixels, **kw)
        return CachedImages(self.cache, self.frame, pos, labels,
                            cpu_transform=self.cpu_transform if name == "train" else None, **kw)

    def _dataset(self, name: str):
        if name not in self._datasets:
            self.setup({"train": "fit", "val": "validate", "test": "test"}[name])
        return self._datasets[name]

    def _loader(self, dataset, sampler=None) -> DataLoader:
        workers = self.loader_workers(dataset)
        return DataLoader(
            dataset, batch_size=self.batch_size, sampler=sampler, shuffle=False,
            num_workers=workers, pin_memory=self.pin_memory, persistent_workers=workers > 0,
            collate_fn=passthrough_collate,   # the datasets fetch whole batches (__getitems__)
        )

    def loader_workers(self, dataset) -> int:
        """DataLoader worker processes for ``dataset``: ``num_workers`` where a batch needs
        per-sample CPU work (decoding at native size, a ``cpu_transform``), else none.

        A cached batch is B ``pread`` calls: about 0.05 ms of CPU per 224 px image in this
        process, against about 0.4 ms per image for two worker processes to hand the same
        bytes over (shared-memory segments, page faults, pickling; measured on a 2-core
        CPU), CPU the augmentation needs. So cached batches are read here.
        """
        return self.num_workers if dataset.per_sample_cpu_work else 0

    def train_dataloader(self) -> DataLoader:
        ds = self._dataset("train")
        world, rank = 1, 0
        trainer = self.trainer
        if trainer is not None:
            world, rank = trainer.world_size, trainer.global_rank
        sampler = EpochSampler(ds.rows.labels, seed=self.seed, balanced=self.balanced,
                               num_replicas=world, rank=rank)
        return self._loader(ds, sampler)

    def val_dataloader(self):
        ds = self._dataset("val")
        return self._loader(ds) if len(ds) else []

    def test_dataloader(self) -> DataLoader:
        return self._loader(self._dataset("test"))

    #: the split ``predict`` serves: ``test``, or ``val`` (a test-only card's validation part,
    #: whose maps a segmentation run tunes its threshold on before it predicts the test rows)
    predict_split = "test"

    def predict_dataloader(self) -> DataLoader:
        return self._loader(self._dataset(self.predict_split))

    def on_after_batch_transfer(self, batch: dict, dataloader_idx: int) -> dict:
        trainer = self.trainer
        training = bool(trainer is not None and trainer.training)
        if not (training and self.augment) or self.image_size is None:
            return self.transform_batch(batch, train=False)
        epoch = trainer.current_epoch
        try:
            # read before Lightning marks this batch ready: ready == index of the batch in flight
            batch_idx = trainer.fit_loop.epoch_loop.batch_progress.current.ready
        except AttributeError:
            last_epoch, batch_idx = self._batch_counter
            batch_idx = batch_idx if last_epoch == epoch else 0
            self._batch_counter = (epoch, batch_idx + 1)
        return self.transform_batch(batch, train=True, epoch=epoch, batch_idx=batch_idx,
                                    rank=trainer.global_rank)

    # ---- the device-side transform -------------------------------------------------------
    def augment_seed(self, epoch: int, batch_idx: int, rank: int = 0) -> int:
        """The seed of one batch's augmentation: a function of (seed, epoch, batch idx, rank)."""
        return int(np.random.SeedSequence([self.seed, epoch, batch_idx, rank]).generate_state(1, np.uint64)[0]
                   & 0x7FFF_FFFF_FFFF_FFFF)

    def transform_batch(self, batch: dict, *, train: bool, epoch: int = 0, batch_idx: int = 0,
                        rank: int = 0) -> dict:
        """uint8 cache batch to the model's batch (on the batch's device); see the contract."""
        if self.image_size is None:
            return batch
        out = dict(batch)
        if train and self.augment:
            gen = torch.Generator().manual_seed(self.augment_seed(epoch, batch_idx, rank))
            boxes = {k: batch[k] for k in ("bbox", "cube_bbox") if k in batch}
            image, mask, boxes = train_transform(batch["image"], gen, self.augment_config,
                                                 masks=batch.get("mask"), boxes=boxes or None,
                                                 mean=self.mean, std=self.std)
            out["image"] = image
            if mask is not None:
                out["mask"] = mask
            if boxes:
                out.update(boxes)
        else:
            out["image"] = eval_transform(batch["image"], self.mean, self.std)
        return out

    # ---- what the task modules read ------------------------------------------------------
    def task_context(self) -> TaskContext:
        """What a task module reads from the data, in one object (the one route from data to
        model: ``minbench.data.context``); built once, as the manifest and splits are."""
        self._load()
        context = getattr(self, "_task_context", None)
        if context is None:
            from minbench.data.manifest import read_info

            info = read_info(self.dataset_dir)
            context = TaskContext(card=self.card, root=Path(self.dataset_dir), source=info.source, frame=self.frame,
                                  positions={k: np.asarray(v, np.int64) for k, v in self.positions.items()},
                                  classes=tuple(self.classes), mean=tuple(self.mean), std=tuple(self.std),
                                  class_texts=info.class_texts, cube_edge_cm=info.cube_edge_cm,
                                  candidates=self.candidates)
            self._task_context = context
        return context

    @property
    def num_classes(self) -> int:
        self._load()
        return len(self.classes)

    @property
    def test_frame(self) -> pd.DataFrame:
        """Rows of the test split in dataloader order (skipped images left out), with the
        card's public test columns only (sealed)."""
        return self.frame_of("test")

    def frame_of(self, split: str) -> pd.DataFrame:
        """Manifest rows of ``train``/``val``/``test`` as served (skipped images left out);
        test rows with the card's public test columns only."""
        from minbench.data.seal import public_view

        ds = self._dataset(split)
        rows = self.frame.iloc[ds.rows.positions]
        return public_view(rows, self.card) if split == "test" else rows

    @property
    def skipped(self) -> pd.DataFrame:
        """Bad images among this module's rows: position, sample_id, image_path, reason."""
        self._load()
        rows = np.concatenate([self.positions[n] for n in ("train", "val", "test")])
        return self.cache.skipped(rows)

    def save_split(self, path: str | Path) -> Path | None:
        """Write the validation carve (``split_record``) as JSON to ``path``."""
        self._load()
        if self.split_record is None:
            return None
        write_json_atomic(path, self.split_record)
        return Path(path)

    def state_dict(self) -> dict[str, Any]:
        self._load()
        return {"classes": list(self.classes), "task": self.task, "seed": self.seed,
                "dataset_fingerprint": self.cache.fingerprint}

