"""The mask folder or zip (``mask_pngs``): the segmentation task.

A folder or zip of ``<sample_id>.png`` single-channel masks of the image's size, nonzero
= mineral (the submission rule of ``minbench.data.masks``), and optionally, beside them,
each image's continuous score map as ``maps/<sample_id>.png``: a single-channel grey PNG of
8 or 16 bits at the mask's size, brighter = more likely mineral (PxAP scores the maps,
``scoring.metrics``). Maps are given for every mask or for none. ``write_mask`` /
``write_score_map`` / ``write_mask_folder`` write it (every pipeline and fixture calls
them); ``open_mask_submission`` checks and reads it.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import stat
import struct
import zipfile
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Callable, Iterable

import numpy as np
import pandas as pd

from minbench.data.masks import MASK_MODES, PNG_SIGNATURE, decode_submission_mask, mask_png_bytes  # noqa: F401
from minbench.errors import UserError
from minbench.scoring import metrics as M, tables as T
from minbench.scoring.formats._common import CSV_SLACK_BYTES, SUBMISSION_FORMATS, ReadSubmission, check_size

#: the subfolder of the score maps: ``maps/<sample_id>.png`` beside ``<sample_id>.png``
MAPS_DIR = "maps"
MASK_BYTES_PER_PIXEL = 2             # a 16-bit single-channel PNG stored uncompressed
MASK_SLACK_BYTES = 64 << 10


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
    # masks (and maps/) may sit at the top or inside one common folder
    parts = {i.filename: PurePosixPath(i.filename).parts for i in infos}
    tops = {p[0] for p in parts.values()}
    strip = len(tops) == 1 and tops != {MAPS_DIR} and all(len(p) >= 2 for p in parts.values())
    members = {}
    for info in infos:
        inner = parts[info.filename][1:] if strip else parts[info.filename]
        if not (len(inner) == 1 or (len(inner) == 2 and inner[0] == MAPS_DIR)):
            raise UserError(f"{path}: member {info.filename!r} is in a subfolder; put the masks at the top "
                            f"(or all in one folder), their score maps in {MAPS_DIR}/")
        members["/".join(inner)] = _Member(info.filename, info.file_size,
                                           lambda n, info=info: zf.open(info).read(n))
    return members


def _folder_members(path: Path, prefix: str = "") -> dict[str, _Member]:
    members = {}
    with os.scandir(path) as it:
        for entry in it:
            if entry.is_symlink():
                raise UserError(f"{path / entry.name}: a symbolic link; masks must be plain files")
            if entry.is_dir() and not prefix and entry.name == MAPS_DIR:
                members.update(_folder_members(Path(entry.path), f"{MAPS_DIR}/"))
                continue
            if entry.is_dir():
                raise UserError(f"{path / entry.name}: a subfolder; masks lie directly in "
                                f"{path if not prefix else path.parent}, their score maps in {MAPS_DIR}/")
            if not entry.is_file():
                raise UserError(f"{path / entry.name}: not a plain file")
            size = entry.stat().st_size

            def read(n, p=Path(entry.path)):
                with open(p, "rb") as f:
                    return f.read(n)

            members[prefix + entry.name] = _Member(str(path / entry.name), size, read)
    return members


class MaskSubmission:
    """A checked folder or zip of masks (and score maps).

    ``read(i)`` decodes test row ``i``: its HxW bool mask (nonzero = mineral) and its score
    map (uint8 or uint16 HxW, None without maps), checking each PNG's format, mode and size;
    rows may be read in any order, from several threads. ``sha256`` (names and contents) is
    complete once every row has been read.
    """

    format = "mask_pngs"

    def __init__(self, ids: list[str], masks: dict[str, _Member], maps: dict[str, _Member], sizes: np.ndarray,
                 caps: np.ndarray, n_bytes: int) -> None:
        self.ids, self._masks, self._maps = ids, masks, maps
        self._sizes, self._caps = sizes, caps
        self.n_bytes = n_bytes
        self._digests: list[bytes] = [b""] * len(ids)

    def _bytes(self, member: _Member, cap: int, what: str) -> bytes:
        data = member.read(cap + 1)
        if len(data) > cap:
            raise UserError(f"{member.name}: decompresses past the size limit of its {what}; refused")
        return data

    def read(self, i: int) -> tuple[np.ndarray, np.ndarray | None]:
        sid, (w, h), cap = self.ids[i], self._sizes[i], int(self._caps[i])
        member = self._masks[sid]
        data = self._bytes(member, cap, "mask")
        mask = decode_submission_mask(data, member.name, int(w), int(h))
        digest, score = hashlib.sha256(data).digest(), None
        if self._maps:
            member = self._maps[sid]
            data = self._bytes(member, cap, "score map")
            score = decode_score_map(data, member.name, int(w), int(h))
            digest += hashlib.sha256(data).digest()
        self._digests[i] = digest
        return mask, score

    @property
    def sha256(self) -> str:
        # a submission without maps hashes as before maps existed (its board entries keep their sha)
        h = hashlib.sha256()
        for sid in sorted(self._masks):
            h.update(sid.encode() + b"\0" + str(self._masks[sid].size).encode() + b"\0")
        for sid in sorted(self._maps):
            h.update(f"{MAPS_DIR}/{sid}".encode() + b"\0" + str(self._maps[sid].size).encode() + b"\0")
        for digest in self._digests:
            h.update(digest)
        return "sha256:" + h.hexdigest()


def _split_members(path: Path, members: dict[str, _Member]) -> tuple[dict[str, _Member], dict[str, _Member]]:
    """Masks and score maps by sample id; refuses names that are no PNG and repeats."""
    masks: dict[str, _Member] = {}
    maps: dict[str, _Member] = {}
    for key, member in sorted(members.items()):
        is_map = key.startswith(f"{MAPS_DIR}/")
        base = PurePosixPath(key).name
        if not base.lower().endswith(".png"):
            what = f"score map (expected {MAPS_DIR}/<sample_id>.png)" if is_map else "mask (expected <sample_id>.png)"
            raise UserError(f"{path}: {key!r} is not a PNG {what}")
        found = maps if is_map else masks
        sid = base[:-4]
        if sid in found:
            raise UserError(f"{path}: two {'score maps' if is_map else 'masks'} for sample {sid!r} "
                            f"({found[sid].name}, {member.name})")
        found[sid] = member
    return masks, maps


def _check_names(path: Path, task_id: str, test_ids: pd.Index, masks: dict, maps: dict) -> None:
    """Exactly one mask per test sample; a map only beside its mask, for every mask or none."""
    ids = pd.Index(list(masks))
    extra = ids[test_ids.get_indexer(ids) < 0]
    if len(extra):
        raise UserError(f"{path}: {masks[extra[0]].name!r} is not a test sample of task {task_id} "
                        f"({len(extra)} such masks); submit exactly the test samples (a validation photo "
                        "is not scored: refused)")
    orphans = [sid for sid in maps if sid not in masks]
    if orphans:
        raise UserError(f"{maps[orphans[0]].name}: a score map without its mask {orphans[0]}.png "
                        f"({len(orphans)} such maps); a map goes beside its image's mask")
    missing = test_ids[ids.get_indexer(test_ids) < 0]
    if len(missing):
        raise UserError(f"{path}: {len(missing)} test samples have no mask (first: {missing[0]}.png); "
                        f"task {task_id} allows no abstention")
    if maps and len(maps) != len(masks):
        lacking = next(sid for sid in test_ids if sid not in maps)
        raise UserError(f"{path}: {MAPS_DIR}/{lacking}.png is missing: score maps are given for {len(maps)} of "
                        f"{len(test_ids)} test samples; give every mask its map, or no maps at all")


def open_mask_submission(path: Path, *, task_id: str, test_ids: pd.Index, widths: np.ndarray,
                         heights: np.ndarray) -> MaskSubmission:
    """Check a folder or zip of masks (and score maps) against the test rows (names,
    counts, sizes). Everything but the PNG contents is checked before the first is decoded.
    """
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: no such file or folder")
    per_image = MASK_BYTES_PER_PIXEL * widths.astype(np.int64) * heights.astype(np.int64) + MASK_SLACK_BYTES
    limit = 2 * int(per_image.sum()) + CSV_SLACK_BYTES  # a mask and a map per image
    if path.is_dir():
        members = _folder_members(path)
    elif path.is_file() and zipfile.is_zipfile(path):
        check_size(path, limit, f"zip of {len(test_ids)} masks and maps")
        members = _zip_members(path)
    else:
        raise UserError(f"{path}: not a folder or a zip of PNG masks")
    total = sum(m.size for m in members.values())
    if total > limit:
        raise UserError(f"{path}: masks and maps hold {total / 2**20:.1f} MiB, far more than {len(test_ids)} "
                        f"images' can (limit {limit / 2**20:.1f} MiB); refused")
    masks, maps = _split_members(path, members)
    _check_names(path, task_id, test_ids, masks, maps)
    for sid, cap in zip(test_ids, per_image):
        for member, what in ((masks[sid], "a mask"), (maps.get(sid), "a score map")):
            if member is not None and member.size > cap:
                raise UserError(f"{member.name}: {member.size} bytes, more than {what} of its image can take")
    sizes = np.stack([widths, heights], axis=1)
    return MaskSubmission(list(test_ids), masks, maps, sizes, per_image, total)


def load_true_mask(folder: Path, row) -> np.ndarray:
    """The ground-truth mask of a manifest row by the truth rule (``minbench.data.masks``)."""
    from minbench.data.masks import read_truth_mask

    return read_truth_mask(Path(folder) / row.mask_path, size=(int(row.width), int(row.height)),
                           sample_id=row.sample_id)


def decode_threads() -> int:
    """Threads that decode a submission's PNGs: the CPUs this process may use, at most 8."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, min(8, cpus))


@SUBMISSION_FORMATS.register("mask_pngs")
def score_mask_pngs(path: Path, data) -> ReadSubmission:
    """Masks (and score maps) against the true masks of the task's test rows: pixel counts
    (and level histograms) per image."""
    rows = data.rows
    test_ids = pd.Index(rows["sample_id"])
    sub = open_mask_submission(path, task_id=data.card.id, test_ids=test_ids,
                               widths=rows["width"].to_numpy(), heights=rows["height"].to_numpy())
    records = list(rows.itertuples(index=False))

    def one(i: int) -> dict:
        mask, score = sub.read(i)
        return T.segmentation_row(mask, load_true_mask(data.folder, records[i]), score)

    # Pillow decodes (inflate, row filters) with the GIL released, so free cores decode
    # rows in parallel; each thread holds one image's arrays, the table only its counts
    pool = ThreadPoolExecutor(max_workers=decode_threads())
    try:
        table = T.stack_segmentation_rows(pool.map(one, range(len(records))))
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    per_sample = pd.DataFrame({"sample_id": test_ids, **M.per_image_scores(table)})
    return ReadSubmission(sub, table, len(rows), per_sample)


# ---- score maps -------------------------------------------------------------------------

#: PNG colour types (IHDR) as a refusal names them
_COLOUR_TYPES = {2: "RGB (3 channels)", 3: "palette colour", 4: "grey with alpha (2 channels)",
                 6: "RGBA (4 channels)"}


def decode_score_map(data: bytes, name: str, width: int, height: int) -> np.ndarray:
    """PNG bytes of a score map to its HxW values (uint8 or uint16), refusing anything but
    a grey PNG of 8 or 16 bits of exactly the image's size (read from the header first)."""
    if not data.startswith(PNG_SIGNATURE) or len(data) < 26 or data[12:16] != b"IHDR":
        raise UserError(f"{name}: not a PNG file; a score map is a grey PNG of 8 or 16 bits")
    w, h = struct.unpack(">II", data[16:24])
    depth, colour = data[24], data[25]
    if (w, h) != (width, height):
        raise UserError(f"{name}: score map is {w}x{h} but its mask (the image) is {width}x{height}")
    if colour != 0:
        raise UserError(f"{name}: score map is {_COLOUR_TYPES.get(colour, f'of PNG colour type {colour}')}; "
                        "a score map has one channel (grey), 8 or 16 bits")
    if depth not in (8, 16):
        raise UserError(f"{name}: score map has {depth}-bit grey levels; a score map has 8 or 16")
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as im:
            values = np.asarray(im)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise UserError(f"{name}: damaged PNG ({exc})") from None
    return values.astype(np.uint16 if depth == 16 else np.uint8, copy=False)


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def quantise_score_map(score: np.ndarray) -> np.ndarray:
    """A score map as the format stores it: a float map in [0, 1] rounded to 16 bits (of
    65,535 x value); a uint8 or uint16 map as it is. What a map held in memory is scored as."""
    score = np.asarray(score)
    if score.dtype in (np.uint8, np.uint16):
        return score
    values = np.asarray(score, dtype=np.float64)
    if not np.isfinite(values).all():
        raise ValueError("a score map must be finite")
    return np.round(np.clip(values, 0.0, 1.0) * 65535.0).astype(np.uint16)


def score_map_png_bytes(score: np.ndarray) -> bytes:
    """A score map as grey PNG bytes: a float map in [0, 1] quantised to 16 bits (round
    of 65,535 x value); a uint8 or uint16 map as its own 8 or 16 bits.

    Encoded here, not by Pillow, to fix the PNG row filter: every row "Sub" (each byte less
    the one a pixel before). A CAM is smooth, so its differences are small; Pillow's
    per-row choice makes a 1024 x 768 16-bit map 3x larger, twice as slow to decode and
    2.5x as slow to write (measured on CAM-like maps: 160 kB, 4 ms to decode)."""
    score = quantise_score_map(score)
    if score.ndim != 2 or not score.size:
        raise ValueError(f"a score map is H x W, got shape {score.shape}")
    h, w = score.shape
    depth = 8 * score.itemsize
    raw = np.ascontiguousarray(score, dtype=">u2" if depth == 16 else np.uint8).view(np.uint8).reshape(h, -1)
    rows = np.empty((h, raw.shape[1] + 1), np.uint8)
    rows[:, 0] = 1  # filter type Sub
    rows[:, 1:] = raw
    rows[:, 1 + score.itemsize:] -= raw[:, :-score.itemsize]  # bytewise, modulo 256
    packer = zlib.compressobj(3, zlib.DEFLATED, 15, 9, zlib.Z_FILTERED)
    idat = packer.compress(rows.tobytes()) + packer.flush()
    header = struct.pack(">IIBBBBB", w, h, depth, 0, 0, 0, 0)  # grey, deflate, filter method 0, no interlace
    return PNG_SIGNATURE + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")


def map_path(folder: str | Path, sample_id: str) -> Path:
    """Where a submission folder keeps the score map of ``sample_id``."""
    return Path(folder) / MAPS_DIR / f"{sample_id}.png"


# ---- writers ----------------------------------------------------------------------------

def write_mask(path: str | Path, mask: np.ndarray) -> None:
    """One mask as an 8-bit PNG (255 = mineral), atomically."""
    from minbench.io import write_bytes_atomic

    write_bytes_atomic(Path(path), mask_png_bytes(mask))


def write_score_map(folder: str | Path, sample_id: str, score: np.ndarray) -> Path:
    """The score map of ``sample_id`` into the submission folder ``folder`` (``maps/``),
    atomically (``score_map_png_bytes``); returns its path."""
    from minbench.io import write_bytes_atomic

    path = map_path(folder, sample_id)
    write_bytes_atomic(path, score_map_png_bytes(score))
    return path


def write_mask_folder(folder: str | Path, masks: Iterable[tuple]) -> Path:
    """A submission folder of ``<sample_id>.png`` from ``(sample_id, mask)`` pairs, or with
    score maps from ``(sample_id, mask, score)`` triples (``maps/<sample_id>.png``); the
    folder appears whole or not at all. Returns ``folder``."""
    from minbench.io import atomic_path

    folder = Path(folder)
    with atomic_path(folder) as tmp:
        tmp.mkdir(parents=True)
        for sid, mask, *score in masks:
            (tmp / f"{sid}.png").write_bytes(mask_png_bytes(mask))
            if score and score[0] is not None:
                path = map_path(tmp, sid)
                path.parent.mkdir(exist_ok=True)
                path.write_bytes(score_map_png_bytes(score[0]))
    return folder
