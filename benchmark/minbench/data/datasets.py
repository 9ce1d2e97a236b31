"""Torch datasets and samplers over the manifest: cached (fixed size) and native resolution.

A sample is a dict. The cached dataset returns the image as SxSx3 uint8 straight from the
cache: it stays uint8 through the DataLoader and the host-to-device copy (4x fewer bytes
than float) and becomes a normalised float tensor only on the device
(``MineralDataModule.on_after_batch_transfer``). Workers therefore only copy bytes.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset, DistributedSampler

from minbench.data.manifest import parse_box

_NAN_BOX = (math.nan,) * 4


class _Rows:
    """Per-row fields of a split, precomputed as arrays (no pandas in ``__getitem__``).

    ``labels`` None: the rows are served without a ``label`` (sealed test rows). Only the
    fields asked for are read of ``frame``: the data module asks for none of a test row's
    truth (``with_mask``, ``with_size`` serve training rows of a kind that has them).
    """

    def __init__(self, frame: pd.DataFrame, positions: np.ndarray, labels: np.ndarray | None,
                 with_mask: bool = False, with_size: bool = False, with_orig_size: bool = False):
        self.positions = np.asarray(positions, dtype=np.int64)
        self.labels = None if labels is None else np.asarray(labels, dtype=np.int64)
        rows = frame.iloc[self.positions]
        self.sample_id = rows["sample_id"].tolist()
        self.with_mask = with_mask
        self.with_size = with_size
        self.with_orig_size = with_orig_size
        if with_size:
            self.size_cm = rows["size_cm"].to_numpy(np.float32)
            self.px_per_cm = rows["px_per_cm"].to_numpy(np.float32)
            self.bbox = np.array([parse_box(t) or _NAN_BOX for t in rows["bbox"]], np.float32).reshape(-1, 4)
            self.cube_bbox = np.array([parse_box(t) or _NAN_BOX for t in rows["cube_bbox"]], np.float32).reshape(-1, 4)

    def __len__(self) -> int:
        return len(self.positions)

    def fields(self, idx: np.ndarray, hw: np.ndarray, scale: np.ndarray | None) -> dict[str, Any]:
        """Every key but the pixels for rows ``idx`` of the split, already batched.

        ``hw``: Bx2 upright original sizes; ``scale``: Bx2 (sx, sy) from the original to the
        served image (None: served at native size).
        """
        pos = self.positions[idx]
        out: dict[str, Any] = {} if self.labels is None else {"label": torch.from_numpy(self.labels[idx])}
        out.update(index=torch.from_numpy(pos), sample_id=[self.sample_id[i] for i in idx.tolist()])
        if self.with_mask or self.with_size or self.with_orig_size or scale is None:
            out["orig_size"] = torch.from_numpy(np.asarray(hw, np.int64).reshape(-1, 2))
        if self.with_size:
            out["size_cm"] = torch.from_numpy(self.size_cm[idx])
            out["px_per_cm"] = torch.from_numpy(self.px_per_cm[idx])
            # manifest boxes are in pixels of the image file (upright); scale them with the image
            factor = np.ones((len(idx), 4), np.float32) if scale is None else np.tile(scale, 2).astype(np.float32)
            out["bbox"] = torch.from_numpy(self.bbox[idx] * factor)
            out["cube_bbox"] = torch.from_numpy(self.cube_bbox[idx] * factor)
        return out


class _BatchedDataset(Dataset):
    """A dataset whose DataLoader fetches whole batches (``__getitems__``): vectorised
    reads and field assembly, no per-sample collate (``torch.stack`` of many small uint8
    tensors is slow, badly so when the CPU is oversubscribed)."""

    rows: _Rows

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def per_sample_cpu_work(self) -> bool:
        """Whether fetching a batch does per-sample CPU work that DataLoader worker processes
        can run in parallel (decoding, a ``cpu_transform``), rather than only reading bytes."""
        return True

    def __getitem__(self, i: int) -> dict[str, Any]:
        batch = self.__getitems__([i])
        return {k: v[0] for k, v in batch.items()}

    def __getitems__(self, indices) -> dict[str, Any]:
        raise NotImplementedError


def passthrough_collate(batch: dict[str, Any]) -> dict[str, Any]:
    """The collate of a ``_BatchedDataset``: its ``__getitems__`` already made the batch."""
    return batch


class CachedImages(_BatchedDataset):
    """Rows of one split, read from an :class:`~minbench.data.cache.ImageCache` (all ready)."""

    def __init__(self, cache, frame: pd.DataFrame, positions, labels, *, with_mask=False, with_size=False,
                 with_orig_size=False, cpu_transform=None):
        self.cache = cache
        self.rows = _Rows(frame, positions, labels, with_mask, with_size, with_orig_size)
        # optional albumentations pipeline for per-sample ops with no batched form; it must
        # keep the image SxSx3 uint8 (and the mask SxS)
        self.cpu_transform = cpu_transform

    @property
    def per_sample_cpu_work(self) -> bool:
        return self.cpu_transform is not None

    def __getitems__(self, indices) -> dict[str, Any]:
        idx = np.asarray(indices, dtype=np.int64)
        pos = self.rows.positions[idx]
        hw = self.cache.orig_hw[pos]
        s = self.cache.size
        scale = np.stack([s / np.maximum(hw[:, 1], 1), s / np.maximum(hw[:, 0], 1)], axis=1)
        out = self.rows.fields(idx, hw, scale)
        images = self.cache.read_images(pos)
        masks = self.cache.read_masks(pos) if self.rows.with_mask else None
        if self.cpu_transform is not None:
            for j in range(len(idx)):  # per-sample by nature: these ops have no batched form
                res = self.cpu_transform(image=images[j], **({"mask": masks[j]} if masks is not None else {}))
                images[j] = res["image"]
                if masks is not None:
                    masks[j] = res["mask"]
        out["image"] = torch.from_numpy(images)
        if masks is not None:
            out["mask"] = torch.from_numpy(masks)[:, None]
        return out


class NativeImages(_BatchedDataset):
    """Rows decoded at native resolution on every access (the size task's classical path).

    The probe pass of the cache has already skipped bad files, so decoding here does not
    fail on them mid-epoch. Images (and masks) stay lists: their sizes differ.
    """

    def __init__(self, dataset_dir, frame: pd.DataFrame, positions, labels, *, with_mask=False,
                 with_size=False, with_orig_size=False, max_pixels=None):
        from pathlib import Path

        self.dataset_dir = Path(dataset_dir)
        self.rows = _Rows(frame, positions, labels, with_mask, with_size, with_orig_size)
        self.image_path = frame["image_path"].to_numpy()[self.rows.positions]
        self.mask_path = frame["mask_path"].to_numpy()[self.rows.positions]
        self.mask_size = frame[["width", "height"]].to_numpy(np.int64)[self.rows.positions]
        self.max_pixels = max_pixels

    def __getitems__(self, indices) -> dict[str, Any]:
        from minbench.data.decode import load_rgb
        from minbench.data.masks import read_truth_mask

        idx = np.asarray(indices, dtype=np.int64)
        images, hws = [], []
        for i in idx.tolist():
            arr, hw = load_rgb(self.dataset_dir / self.image_path[i], max_pixels=self.max_pixels)
            images.append(arr)
            hws.append(hw)
        out = self.rows.fields(idx, np.asarray(hws), None)
        out["image"] = images
        if self.rows.with_mask:
            out["mask"] = [read_truth_mask(self.dataset_dir / self.mask_path[i], size=tuple(self.mask_size[i]),
                                           sample_id=self.rows.sample_id[i], max_pixels=self.max_pixels
                                           ).astype(np.uint8)
                           if self.mask_path[i] else None for i in idx.tolist()]
        return out


class EpochSampler(DistributedSampler):
    """Seeded order for the training split: a permutation, or class-balanced draws.

    Each epoch's order depends only on (seed, epoch): identical on every rank, then split
    into disjoint per-rank shards (padded by wrapping to equal length, as DistributedSampler
    does). It subclasses ``DistributedSampler`` so Lightning uses it as is under DDP instead
    of wrapping it; Lightning calls ``set_epoch`` each epoch.

    ``balanced``: draw ``len(labels)`` samples with replacement, each class equally likely
    (weight 1 / class count per row).
    """

    def __init__(self, labels, *, seed: int = 0, balanced: bool = False,
                 num_replicas: int = 1, rank: int = 0):
        # deliberately not calling DistributedSampler.__init__: it needs a dataset and an
        # initialised process group; this sampler knows its world from the arguments.
        self.labels = np.asarray(labels, dtype=np.int64)
        self.seed = int(seed)
        self.balanced = balanced
        self.num_replicas = int(num_replicas)
        self.rank = int(rank)
        self.epoch = 0
        self.shuffle = True
        self.drop_last = False
        self.num_samples = math.ceil(len(self.labels) / self.num_replicas)
        self.total_size = self.num_samples * self.num_replicas

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def order(self) -> np.ndarray:
        """This epoch's full order (before sharding), the same on every rank."""
        rng = np.random.default_rng([self.seed, self.epoch])
        n = len(self.labels)
        if not self.balanced:
            return rng.permutation(n)
        _, inverse, counts = np.unique(self.labels, return_inverse=True, return_counts=True)
        weights = 1.0 / counts[inverse]
        return rng.choice(n, size=n, replace=True, p=weights / weights.sum())

    def __iter__(self):
        order = self.order()
        if len(order) < self.total_size:  # wrap around so every rank has the same count
            order = np.concatenate([order, order[: self.total_size - len(order)]])
        return iter(order[self.rank: self.total_size: self.num_replicas].tolist())

    def __len__(self) -> int:
        return self.num_samples


def first_occurrences(index):
    """Boolean mask of the first occurrence of each value of ``index``: the one removal of
    DDP padding (everything that gathers results across ranks calls it).

    ``index``: a tensor (the mask is a tensor on its device), a NumPy array or a list of
    hashable keys (the mask is a NumPy array). Under DDP, Lightning's
    ``DistributedSampler`` pads the eval split to a multiple of the world size by repeating
    rows. Gather (index, prediction) from every rank and keep ``first_occurrences(index)``
    so metrics equal the single-process ones.
    """
    if not isinstance(index, torch.Tensor):
        arr = np.asarray(index) if not isinstance(index, list) else None
        if arr is not None and arr.dtype.kind in "iub":
            return first_occurrences(torch.from_numpy(np.ascontiguousarray(arr))).numpy()
        return ~pd.Series(list(index), dtype=object).duplicated(keep="first").to_numpy()
    index = index.flatten()
    order = torch.argsort(index, stable=True)
    sorted_idx = index[order]
    first_sorted = torch.ones_like(sorted_idx, dtype=torch.bool)
    first_sorted[1:] = sorted_idx[1:] != sorted_idx[:-1]
    keep = torch.zeros_like(first_sorted)
    keep[order] = first_sorted
    return keep
