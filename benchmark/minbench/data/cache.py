"""The decoded-image cache: each photo decoded and resized once, then read as raw uint8.

Decoding a ~1024 px JPEG costs far more than a training step of a small model on a GPU,
so the data module decodes every image once per (manifest fingerprint, image size, decode
policy) into a store on disk and afterwards only copies bytes.

Layout of one store (``<root>/<fingerprint>-s<size>-d<decode version>/``):

- ``images.u8``  N fixed slots of SxSx3 uint8 (RGB), slot = manifest row position. Created
  sparse, so rows never asked for take no disk; read with ``pread`` (no mapping: the page
  cache holds it, the process's memory stays bounded by the batch).
- ``masks.u8``   N slots of SxS uint8 (0/1) for rows that have a mask.
- ``index.npz``  per row: status (0 = not built, 1 = ready, 2 = skipped) and the upright
  full size (H, W). It is the completion marker: it is replaced atomically, and only after
  the slots it marks ready were written and fsynced. A crash mid-build leaves those rows at
  0, to be built again; a half-written slot is never read.
- ``skipped.csv`` every skipped row: sample_id, image_path, reason (the bad-input report).
- ``meta.json``  what the store is (fingerprint, size, rows, decode version).

Rows are built on demand (a quick run on 100 rows decodes 100 images); builders hold
``minbench.io.file_lock`` so two processes never build at once, and the second one finds
the rows ready. With ``size=None`` the store keeps only the index (a probe pass that finds
bad images up front for the native-resolution path).
"""

from __future__ import annotations

import logging
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

from minbench.data.decode import DECODE_VERSION, BadImage, load_rgb, resize_mask, resize_square
from minbench.data.manifest import fingerprint
from minbench.data.masks import read_truth_mask
from minbench.io import atomic_path, file_lock, storage_errors, write_json_atomic, write_text_atomic

log = logging.getLogger("minbench.data")

TODO, READY, SKIPPED = 0, 1, 2
_CHUNK = 256  # rows per commit of the index: progress survives an interrupted build
_PROBE_DRAFT = 64  # the native path's probe decodes at a small draft scale: fast, still full-file
_WRITE_HINT = "point MINBENCH_HOME (or the data module's cache_dir) at another folder"


def default_root() -> Path:
    from minbench.paths import cache_dir

    return cache_dir() / "images"


class ImageCache:
    """The store of one dataset at one size. ``frame`` is the whole manifest (row = slot)."""

    def __init__(self, dataset_dir: str | Path, frame: pd.DataFrame, size: int | None,
                 root: str | Path | None = None, max_pixels: int | None = None,
                 fingerprint_: str | None = None):
        self.dataset_dir = Path(dataset_dir).resolve()
        self.size = size
        self.max_pixels = max_pixels
        self.n = len(frame)
        self.sample_id = frame["sample_id"].to_numpy()
        self.image_path = frame["image_path"].to_numpy()
        self.mask_path = frame["mask_path"].to_numpy()
        # the manifest's (W, H): a truth mask must have exactly its image's size (data.masks)
        self.mask_size = (frame[["width", "height"]].to_numpy(np.int64) if {"width", "height"} <= set(frame.columns)
                          else np.zeros((self.n, 2), np.int64))
        self.fingerprint = fingerprint_ or fingerprint(frame)
        tag = f"s{size}" if size else "native"
        self.folder = Path(root or default_root()) / f"{self.fingerprint.split(':')[-1][:20]}-{tag}-d{DECODE_VERSION}"
        self._fds: dict[str, tuple[int, int]] = {}
        self.status = np.zeros(self.n, np.int8)
        self.orig_hw = np.zeros((self.n, 2), np.int32)
        self.reasons: dict[int, str] = {}
        self._load_index()

    # ---- files ---------------------------------------------------------------------------
    @property
    def image_file(self) -> Path:
        return self.folder / "images.u8"

    @property
    def mask_file(self) -> Path:
        return self.folder / "masks.u8"

    @property
    def index_file(self) -> Path:
        return self.folder / "index.npz"

    @property
    def report_file(self) -> Path:
        return self.folder / "skipped.csv"

    @property
    def image_bytes(self) -> int:
        return (self.size or 0) ** 2 * 3

    @property
    def mask_bytes(self) -> int:
        return (self.size or 0) ** 2

    def _data_files(self) -> list[tuple[Path, int]]:
        if not self.size:
            return []
        return [(self.image_file, self.image_bytes), (self.mask_file, self.mask_bytes)]

    def _files_sound(self) -> bool:
        return all(p.is_file() and p.stat().st_size == self.n * slot for p, slot in self._data_files())

    def _load_index(self) -> None:
        if not self.index_file.is_file() or not self._files_sound():
            self.status[:] = TODO
            return
        with np.load(self.index_file, allow_pickle=False) as z:
            if z["status"].shape != (self.n,):
                self.status[:] = TODO
                return
            self.status[:] = z["status"]
            self.orig_hw[:] = z["orig_hw"]
        self.reasons = {}
        if self.report_file.is_file():
            rep = pd.read_csv(self.report_file, dtype=str, keep_default_na=False)
            self.reasons = dict(zip(rep["position"].astype(int), rep["reason"]))

    def _write_index(self) -> None:
        with atomic_path(self.index_file) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, status=self.status, orig_hw=self.orig_hw)
                f.flush()
                os.fsync(f.fileno())
        pos = np.flatnonzero(self.status == SKIPPED)
        rep = pd.DataFrame({"position": pos, "sample_id": self.sample_id[pos],
                            "image_path": self.image_path[pos],
                            "reason": [self.reasons.get(int(p), "") for p in pos]})
        write_text_atomic(self.report_file, rep.to_csv(index=False, lineterminator="\n"))

    def _create_files(self) -> None:
        for path, slot in self._data_files():
            if path.is_file() and path.stat().st_size == self.n * slot:
                continue
            with atomic_path(path) as tmp:
                with open(tmp, "wb") as f:
                    f.truncate(self.n * slot)  # sparse: untouched slots cost no disk
            self.status[:] = TODO
        write_json_atomic(self.folder / "meta.json", {
            "fingerprint": self.fingerprint, "size": self.size, "rows": self.n,
            "decode_version": DECODE_VERSION, "dataset_dir": str(self.dataset_dir),
        })

    # ---- building ------------------------------------------------------------------------
    def missing(self, positions) -> np.ndarray:
        positions = np.asarray(positions, dtype=np.int64)
        return positions[self.status[positions] == TODO]

    def ensure(self, positions, workers: int = 0, progress: bool = False) -> int:
        """Build every row of ``positions`` not built yet; returns how many were decoded."""
        if not len(self.missing(positions)):
            return 0  # a store already built is read even from a read-only cache
        # a read-only cache is named before any decoding; a disk filling up meanwhile too
        # (the rows written so far stay usable: the index marks only fsynced chunks ready)
        with storage_errors(self.folder, "the decoded-image cache", _WRITE_HINT):
            return self._ensure(positions, workers, progress)

    def _ensure(self, positions, workers: int, progress: bool) -> int:
        self.folder.mkdir(parents=True, exist_ok=True)
        with file_lock(self.folder / ".lock"):
            self._load_index()  # another process may have built them while we waited
            todo = self.missing(positions)
            if not len(todo):
                return 0
            self.close()  # files may be recreated below; cached read descriptors would be stale
            self._create_files()
            self._build(todo, workers, progress)
        return len(todo)

    def _jobs(self, todo: np.ndarray) -> list[tuple]:
        return [(int(p), str(self.dataset_dir / self.image_path[p]),
                 str(self.dataset_dir / self.mask_path[p]) if self.mask_path[p] else "",
                 tuple(int(v) for v in self.mask_size[p]), str(self.sample_id[p]), self.size, self.max_pixels,
                 str(self.image_file), str(self.mask_file))
                for p in todo]

    def _build(self, todo: np.ndarray, workers: int, progress: bool) -> None:
        jobs = self._jobs(todo)
        pool = ProcessPoolExecutor(workers, mp_context=_mp_context()) if workers > 1 else None
        if pool:
            pool.submit(_init_worker).result()  # fork now, while this process runs no extra threads
        bar = None
        if progress:
            from minbench.console import progress as phase

            bar = phase(f"decoding images into the cache {self.folder.name}", len(jobs),
                        marks=4 if len(jobs) >= 500 else 0, unit="images")
        finished = False
        try:
            for start in range(0, len(jobs), _CHUNK):
                chunk = jobs[start:start + _CHUNK]
                results = pool.map(_build_one, chunk, chunksize=8) if pool else map(_build_one, chunk)
                for pos, ok, hw, reason in results:
                    self.orig_hw[pos] = hw
                    if ok:
                        self.status[pos] = READY
                    else:
                        self.status[pos] = SKIPPED
                        self.reasons[pos] = reason
                        log.warning("skipping %s (sample %s): %s", self.image_path[pos], self.sample_id[pos], reason)
                    if bar:
                        bar.advance()
                self._sync_data()
                self._write_index()  # only now are this chunk's rows marked ready
            finished = True
        finally:
            if pool:
                pool.shutdown()
            else:
                _close_worker_fds()
            if bar:
                bar.close(stopped=not finished)

    def _sync_data(self) -> None:
        for path, _ in self._data_files():
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    # ---- reading -------------------------------------------------------------------------
    def ready(self, positions) -> np.ndarray:
        """Boolean mask: which of ``positions`` are built and usable."""
        return self.status[np.asarray(positions, dtype=np.int64)] == READY

    def skipped(self, positions=None) -> pd.DataFrame:
        """The skip report (position, sample_id, image_path, reason), optionally for some rows."""
        pos = np.flatnonzero(self.status == SKIPPED)
        if positions is not None:
            pos = np.intersect1d(pos, np.asarray(positions, dtype=np.int64))
        return pd.DataFrame({"position": pos, "sample_id": self.sample_id[pos],
                             "image_path": self.image_path[pos],
                             "reason": [self.reasons.get(int(p), "") for p in pos]})

    def _fd(self, path: Path) -> int:
        key = str(path)
        pid = os.getpid()
        hit = self._fds.get(key)
        if hit is None or hit[0] != pid:  # a DataLoader worker must not share its parent's fd offset state
            self._fds[key] = (pid, os.open(path, os.O_RDONLY))
        return self._fds[key][1]

    def read_images(self, positions, out: np.ndarray | None = None) -> np.ndarray:
        """Slots ``positions`` as a BxSxSx3 uint8 array, read straight into ``out`` (no copies)."""
        return self._read(self.image_file, positions, (self.size, self.size, 3), out)

    def read_masks(self, positions, out: np.ndarray | None = None) -> np.ndarray:
        """Mask slots ``positions`` as a BxSxS uint8 array (0/1)."""
        return self._read(self.mask_file, positions, (self.size, self.size), out)

    def read_image(self, pos: int) -> np.ndarray:
        """Slot ``pos`` as SxSx3 uint8."""
        return self.read_images([pos])[0]

    def read_mask(self, pos: int) -> np.ndarray:
        return self.read_masks([pos])[0]

    def _read(self, path: Path, positions, shape: tuple, out: np.ndarray | None) -> np.ndarray:
        positions = np.asarray(positions, dtype=np.int64).reshape(-1)
        if out is None:
            out = np.empty((len(positions), *shape), np.uint8)
        fd = self._fd(path)
        slot = int(np.prod(shape))
        for row, pos in zip(out, positions.tolist()):  # one syscall per slot, into the batch array
            if os.preadv(fd, [row.reshape(-1)], pos * slot) != slot:
                raise RuntimeError(f"{path}: slot {pos} is short (the cache was damaged while in use)")
        return out

    def close(self) -> None:
        for pid, fd in self._fds.values():
            if pid == os.getpid():
                os.close(fd)
        self._fds.clear()

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_fds"] = {}  # file descriptors do not travel to DataLoader workers
        return state

    def describe(self) -> dict:
        return {"folder": str(self.folder), "rows_ready": int((self.status == READY).sum()),
                "rows_skipped": int((self.status == SKIPPED).sum()),
                "bytes_on_disk": _disk_usage(self.folder)}


# ---- worker side (module level: picklable for the process pool) ----------------------------
_WORKER_FDS: dict[str, int] = {}


def _init_worker() -> None:
    """Nothing to set up; submitted once so the pool forks before any progress thread runs."""


def _worker_fd(path: str) -> int:
    if path not in _WORKER_FDS:
        _WORKER_FDS[path] = os.open(path, os.O_WRONLY)
    return _WORKER_FDS[path]


def _build_one(job: tuple) -> tuple[int, bool, tuple[int, int], str]:
    """Decode one row and write its slot(s); (position, ok, (H, W), reason)."""
    pos, image_path, mask_path, mask_wh, sample_id, size, max_pixels, image_file, mask_file = job
    try:
        arr, hw = load_rgb(image_path, draft=size or _PROBE_DRAFT, max_pixels=max_pixels)
        mask = None
        if mask_path:  # the truth rule and its verdicts, as the scorer and `data check` read it
            expected = mask_wh if all(mask_wh) else (hw[1], hw[0])
            mask = read_truth_mask(mask_path, size=expected, sample_id=sample_id,
                                   max_pixels=max_pixels).astype(np.uint8)
    except BadImage as exc:
        return pos, False, (0, 0), str(exc)
    if size:
        img = resize_square(arr, size)
        os.pwrite(_worker_fd(image_file), np.ascontiguousarray(img).tobytes(), pos * size * size * 3)
        if mask is not None:
            os.pwrite(_worker_fd(mask_file), resize_mask(mask, size).tobytes(), pos * size * size)
    return pos, True, hw, ""


def _close_worker_fds() -> None:
    for fd in _WORKER_FDS.values():
        os.close(fd)
    _WORKER_FDS.clear()


def _mp_context():
    import multiprocessing

    # fork where there is one (as torch's DataLoader does): spawn and forkserver re-import the
    # user's __main__, which breaks any script that builds the cache without a __main__ guard.
    # The children only decode and resize with PIL and numpy: no thread pools (torch, cv2)
    # that a fork could leave locked.
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("fork" if "fork" in methods else "spawn")


def _disk_usage(folder: Path) -> int:
    total = 0
    for p in folder.glob("*"):
        if p.is_file():
            total += p.stat().st_blocks * 512
    return total
