"""Per-sample result files: what each leaderboard entry's metrics are built from.

One compressed ``.npz`` per entry, beside its board
(``<board stem>.samples/<entry id>-<sha8>.npz``; schema in ``leaderboards/SCHEMA.md``):

- ``sample_id`` (N,) UTF-8 bytes, in the test split's manifest order;
- ``seeds`` (S,) int64, ``-1`` for a submission (no run seed);
- ``family``: ``classification`` | ``segmentation`` | ``size``;
- the per-sample table of ``metrics.py`` for each seed, stacked (S, N):
  classification ``rank`` (uint8: 1-based rank of the true class among the submitted
  ones, 0 = not submitted) and ``target`` (int32 class index); segmentation ``tp``,
  ``fp``, ``fn``, ``tn`` (int64 pixel counts); size ``pred`` (float64 cm, NaN =
  abstained) and ``true`` (float64 cm);
- segmentation with score maps (every seed's): ``ap`` (S, N) float64 per-image AP, and
  ``px_pos``, ``px_neg`` (S, N, 256) uint32, the per-image level histograms at 256 levels
  (a 16-bit level's top byte; an 8-bit map's own levels, so exact for 8-bit maps).

The metric tables are rebuilt from these columns, so every number of an entry can be
recomputed, paired with another entry's, or resampled. PxAP recomputed from a file is the
PxAP of the maps at 256 levels: the scorer's 65,536-level histograms of one submission
take tens of MB (1024 x 768 maps of 160 photos), the 256-level ones a few hundred kB.
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from minbench.scoring.metrics import CARD_FAMILY
from minbench.scoring.tables import NO_HIT

COLUMNS = {"classification": ("pos", "target"), "segmentation": ("tp", "fp", "fn", "tn"),
           "size": ("pred", "true")}
#: a segmentation table's score-map columns, kept when every seed has them
MAP_COLUMNS = ("ap", "px_pos", "px_neg")
#: map levels a per-sample file keeps (``coarsen``)
FILE_LEVELS = 256


class SamplesError(Exception):
    """A per-sample file that is missing, truncated or does not fit its entry."""


@dataclass
class Samples:
    """Per-sample tables of one entry: ``tables[i]`` belongs to ``seeds[i]``."""

    family: str
    sample_id: np.ndarray      # (N,) bytes
    seeds: list[int | None]
    tables: list[dict[str, np.ndarray]]

    @property
    def n(self) -> int:
        return len(self.sample_id)

    def select(self, seeds: list[int | None]) -> "Samples":
        """These seeds only, in the given order."""
        index = {s: i for i, s in enumerate(self.seeds)}
        return Samples(self.family, self.sample_id, list(seeds), [self.tables[index[s]] for s in seeds])


def family_of(kind: str) -> str:
    return CARD_FAMILY[kind]


def coarsen(hist: np.ndarray) -> np.ndarray:
    """Level histograms (..., L) summed into ``FILE_LEVELS`` equal runs of levels (L a
    multiple of it: 65,536 from the scorer; 256 is returned as it is)."""
    hist = np.asarray(hist)
    factor = hist.shape[-1] // FILE_LEVELS
    if factor * FILE_LEVELS != hist.shape[-1]:
        raise ValueError(f"{hist.shape[-1]} map levels are not a multiple of {FILE_LEVELS}")
    return hist.reshape(*hist.shape[:-1], FILE_LEVELS, factor).sum(axis=-1, dtype=np.uint32)


def from_table(family: str, sample_ids, table: dict[str, np.ndarray], seed: int | None) -> Samples:
    """One seed's per-sample table (as ``metrics.py`` builds it) as ``Samples``."""
    ids = np.char.encode(np.asarray(sample_ids, dtype=str), "utf-8")
    keep = COLUMNS[family] + (MAP_COLUMNS if family == "segmentation" and "px_pos" in table else ())
    return Samples(family, ids, [seed], [{k: np.asarray(table[k]) for k in keep}])


def merge(old: Samples | None, new: Samples) -> Samples:
    """``old`` with ``new``'s seeds added (a seed in both: ``new``'s replaces it)."""
    if old is None or old.family != new.family or not np.array_equal(old.sample_id, new.sample_id):
        return new
    keep = [(s, t) for s, t in zip(old.seeds, old.tables) if s not in new.seeds]
    pairs = sorted(keep + list(zip(new.seeds, new.tables)), key=lambda p: (p[0] is not None, p[0] or 0))
    return Samples(new.family, new.sample_id, [s for s, _ in pairs], [t for _, t in pairs])


def to_bytes(s: Samples) -> bytes:
    """The ``.npz`` bytes of ``s`` (compressed)."""
    arrays = {"sample_id": s.sample_id, "family": np.array(s.family),
              "seeds": np.array([-1 if x is None else int(x) for x in s.seeds], dtype=np.int64)}
    if s.family == "classification":
        pos = np.stack([t["pos"] for t in s.tables])
        arrays["rank"] = np.where(pos == NO_HIT, 0, pos + 1).astype(np.uint8)  # ranks are at most 10
        arrays["target"] = np.stack([t["target"] for t in s.tables]).astype(np.int32)
    else:
        for k in COLUMNS[s.family]:
            arrays[k] = np.stack([t[k] for t in s.tables]).astype(np.float64 if s.family == "size" else np.int64)
        if s.family == "segmentation" and all("px_pos" in t for t in s.tables):
            arrays["ap"] = np.stack([t["ap"] for t in s.tables]).astype(np.float64)
            for k in ("px_pos", "px_neg"):
                arrays[k] = np.stack([coarsen(t[k]) for t in s.tables])
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def read(path: str | Path, *, sha: str | None = None, n: int | None = None) -> Samples:
    """Read a per-sample file; ``SamplesError`` says what is wrong (missing, truncated,
    changed since the board was written, or not ``n`` samples)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise SamplesError(f"{path}: per-sample file missing") from None
    except OSError as exc:
        raise SamplesError(f"{path}: per-sample file unreadable ({exc.strerror or exc})") from None
    if sha and sha256(data) != sha:
        raise SamplesError(f"{path}: per-sample file truncated or changed since the board was written "
                           "(checksum differs)")
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            family = str(z["family"])
            seeds = [None if x < 0 else int(x) for x in z["seeds"]]
            ids = z["sample_id"]
            if family == "classification":
                rank = z["rank"].astype(np.int64)
                cols = {"pos": np.where(rank == 0, NO_HIT, rank - 1), "target": z["target"].astype(np.int64)}
            else:
                cols = {k: z[k] for k in COLUMNS[family] + tuple(c for c in MAP_COLUMNS if c in z.files)}
    except (zipfile.BadZipFile, KeyError, ValueError, EOFError, OSError) as exc:
        raise SamplesError(f"{path}: per-sample file truncated or not a minbench per-sample file ({exc})") from None
    shapes = {v.shape[:2] for v in cols.values()}
    if shapes != {(len(seeds), len(ids))}:
        raise SamplesError(f"{path}: per-sample arrays do not match {len(seeds)} seeds x {len(ids)} samples")
    if n is not None and len(ids) != n:
        raise SamplesError(f"{path}: holds {len(ids)} samples, its entry says {n}")
    tables = [{k: v[i] for k, v in cols.items()} for i in range(len(seeds))]
    return Samples(family, ids, seeds, tables)
