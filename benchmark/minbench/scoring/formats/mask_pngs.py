"""The mask folder or zip (``mask_pngs``): the segmentation task.

A folder or zip of ``<sample_id>.png`` single-channel masks of the image's size, nonzero
= mineral (the submission rule of ``minbench.data.masks``). ``write_mask`` /
``write_mask_folder`` write it (every pipeline and fixture calls them);
``open_mask_submission`` checks and reads it.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Callable, Iterable, Iterator

import numpy as np
import pandas as pd

from minbench.data.masks import MASK_MODES, PNG_SIGNATURE, decode_submission_mask, mask_png_bytes  # noqa: F401
from minbench.errors import UserError
from minbench.scoring import metrics as M
from minbench.scoring.formats._common import CSV_SLACK_BYTES, SUBMISSION_FORMATS, ReadSubmission, check_size

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
        check_size(path, limit, f"zip of {len(test_ids)} masks")
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
            yield decode_submission_mask(data, member.name, int(w), int(hgt))

    return MaskSubmission(masks(), total, h)


def load_true_mask(folder: Path, row) -> np.ndarray:
    """The ground-truth mask of a manifest row by the truth rule (``minbench.data.masks``)."""
    from minbench.data.masks import read_truth_mask

    return read_truth_mask(Path(folder) / row.mask_path, size=(int(row.width), int(row.height)),
                           sample_id=row.sample_id)


@SUBMISSION_FORMATS.register("mask_pngs")
def score_mask_pngs(path: Path, data) -> ReadSubmission:
    """Masks against the true masks of the task's test rows: pixel counts per image."""
    rows = data.rows
    test_ids = pd.Index(rows["sample_id"])
    sub = open_mask_submission(path, task_id=data.card.id, test_ids=test_ids,
                               widths=rows["width"].to_numpy(), heights=rows["height"].to_numpy())
    truths = (load_true_mask(data.folder, r) for r in rows.itertuples(index=False))
    table = M.segmentation_table(zip(sub.masks, truths))
    per_sample = pd.DataFrame({"sample_id": test_ids, **M.per_image_scores(table)})
    return ReadSubmission(sub, table, len(rows), per_sample)


def write_mask(path: str | Path, mask: np.ndarray) -> None:
    """One mask as an 8-bit PNG (255 = mineral), atomically."""
    from minbench.io import write_bytes_atomic

    write_bytes_atomic(Path(path), mask_png_bytes(mask))


def write_mask_folder(folder: str | Path, masks: Iterable[tuple[str, np.ndarray]]) -> Path:
    """A submission folder of ``<sample_id>.png`` from (sample_id, mask) pairs; the folder
    appears whole or not at all. Returns ``folder``."""
    from minbench.io import atomic_path

    folder = Path(folder)
    with atomic_path(folder) as tmp:
        tmp.mkdir(parents=True)
        for sid, mask in masks:
            (tmp / f"{sid}.png").write_bytes(mask_png_bytes(mask))
    return folder
