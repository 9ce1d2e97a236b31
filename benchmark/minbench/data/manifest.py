"""The canonical manifest: one row per image; everything downstream reads only this.

A prepared dataset is a folder holding ``manifest.parquet`` (the table),
``dataset.json`` (name, version, source, fingerprints, counts) and the files the rows
point to (paths are relative to the folder).

A dataset has two fingerprints. ``fingerprint`` hashes the whole manifest (so the photos'
rendering: a box or a scale that moves in its last printed digit moves it): caches of
decoded images and trained classifiers key on it. ``truth_fingerprint`` hashes only what a
score is computed against: the sample ids, every task's split membership, the labels, the
sizes, the scored masks' pixels and the class texts. It is the same on every machine that
makes the same dataset, even where a library's resampling or JPEG encoder gives other
pixels, so the leaderboards key on it (``DatasetInfo.identity``) and record the image
fingerprint each score was made on beside it.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from minbench.data.boxes import format_box, parse_box  # noqa: F401  (manifest cells: the one box parser)
from minbench.errors import UserError
from minbench.io import atomic_path, read_json, write_json_atomic

MANIFEST_FILE = "manifest.parquet"
DATASET_FILE = "dataset.json"
SCHEMA_VERSION = 1
#: ``dataset.json`` key of the class-level texts: label -> one line about the class (the
#: embedded data's field-guide line from the mineral database), written by the generator
CLASS_TEXTS_KEY = "class_descriptions"
#: ``dataset.json`` key of the truth fingerprint (``truth_fingerprint``)
TRUTH_FINGERPRINT_KEY = "truth_fingerprint"
#: ``dataset.json`` key of the reference cube's edge in cm (the size task's one source for
#: it), written by the generator and by ``data prepare``
CUBE_EDGE_KEY = "cube_edge_cm"
#: the key ``data prepare`` wrote it under before it was one key (still read)
_OLD_CUBE_EDGE_KEY = "reference_cube_cm"
#: ``dataset.json`` key of a public dataset (``minbench data seal``: ``data/public.py``): the
#: sealed tasks and the original dataset's identity; its sealed test rows hold no truth
PUBLIC_KEY = "public"

FEWSHOT_COLUMNS = ("fewshot_10", "fewshot_98", "fewshot_360")
FEWSHOT_VALUES = ("train", "test", "")
FLAG_COLUMNS = ("zeroshot", "segmentation", "size")
BOX_COLUMNS = ("bbox", "cube_bbox", "text_boxes", "mineral_boxes")

# column -> (dtype kind, meaning). Boxes are JSON text in pixels of the image file:
# "bbox"/"cube_bbox" hold [x1, y1, x2, y2] or "" when unknown; "text_boxes" holds a list
# of such boxes; "mineral_boxes" keeps the release's OWL-ViT list as given.
SCHEMA: dict[str, tuple[str, str]] = {
    "sample_id": ("str", "unique id of the image (the release's own, e.g. 2_27312)"),
    "image_path": ("str", "image file, relative to the dataset folder"),
    "width": ("int", "image width in pixels"),
    "height": ("int", "image height in pixels"),
    "species": ("str", "class label: English species (or variety) name"),
    "species_ru": ("str", "Russian species name, UTF-8 ('' when none)"),
    "variety": ("str", "variety name ('' when none)"),
    "satellites": ("str", "satellite minerals, comma separated ('' when none)"),
    "collection": ("str", "museum collection / generator family ('' when none)"),
    "description": ("str", "English description of the specimen"),
    "fewshot_10": ("str", "'train', 'test' or '' (not in the subset)"),
    "fewshot_98": ("str", "'train', 'test' or ''"),
    "fewshot_360": ("str", "'train', 'test' or ''"),
    "zeroshot": ("bool", "in the zero-shot evaluation set"),
    "segmentation": ("bool", "in the segmentation set (has a mask)"),
    "size": ("bool", "in the size set (has size_cm)"),
    "mask_path": ("str", "mask PNG (white = mineral), relative; '' when none"),
    "size_cm": ("float", "measured specimen size in cm; NaN when unknown"),
    "px_per_cm": ("float", "true scale of the photo in px/cm; NaN when unknown"),
    "bbox": ("str", "specimen box JSON [x1,y1,x2,y2] in pixels, '' when unknown"),
    "cube_bbox": ("str", "reference cube box JSON, '' when unknown"),
    "text_boxes": ("str", "label/text boxes JSON list, '' when unknown"),
    "mineral_boxes": ("str", "release's mineral boxes JSON as given, '' when none"),
    "source": ("str", "'synth' or 'mineralimage5k'"),
}
COLUMNS = tuple(SCHEMA)


@dataclass(frozen=True)
class DatasetInfo:
    """What ``dataset.json`` says about a prepared dataset."""

    name: str
    version: str
    source: str
    fingerprint: str
    n_samples: int
    extra: dict[str, Any]
    folder: Path | None = None  # where it was read from (``read_info``): the truth is worked out there

    @property
    def unavailable_tasks(self) -> dict[str, str]:
        """Task id -> why this dataset cannot serve it (a partial release; ``data prepare``)."""
        found = self.extra.get("unavailable_tasks")
        return {str(k): str(v) for k, v in found.items()} if isinstance(found, dict) else {}

    @property
    def class_texts(self) -> dict[str, str]:
        """Label -> class-level text (``dataset.json``'s ``class_descriptions``): what a
        zero-shot model may be told about a class it never saw, written per class, never
        read from a sample. Empty when the dataset gives none (the real release: there a
        class is named by its label alone). Blank or non-text values are left out."""
        found = self.extra.get(CLASS_TEXTS_KEY)
        if not isinstance(found, dict):
            return {}
        return {str(k): " ".join(v.split()) for k, v in found.items() if isinstance(v, str) and v.strip()}

    @property
    def cube_edge_cm(self) -> float | None:
        """The reference cube's edge in cm (``dataset.json``'s ``cube_edge_cm``; datasets
        prepared before it was one key wrote ``reference_cube_cm``), or None if not given."""
        for key in (CUBE_EDGE_KEY, _OLD_CUBE_EDGE_KEY):
            value = self.extra.get(key)
            if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
                return float(value)
        return None

    @property
    def truth_fingerprint(self) -> str | None:
        """The hash of what scores are computed against (``truth_fingerprint``). A dataset
        prepared before it was recorded has it worked out from its folder, once per process;
        None when there is no manifest to work it out from."""
        value = self.extra.get(TRUTH_FINGERPRINT_KEY)
        if isinstance(value, str):
            return value
        if self.folder is None or not (self.folder / MANIFEST_FILE).is_file():
            return None
        return _truth_of_folder(self.folder.resolve(), self.fingerprint,
                                json.dumps(self.extra.get(CLASS_TEXTS_KEY) or {}, sort_keys=True))

    def identity(self) -> dict[str, Any]:
        """The dataset as scores and leaderboards name it: ``fingerprint`` is the truth
        fingerprint (the board key), ``image_fingerprint`` the manifest's."""
        return {"name": self.name, "version": self.version, "source": self.source,
                "fingerprint": self.truth_fingerprint or self.fingerprint, "image_fingerprint": self.fingerprint}

    @property
    def public(self) -> dict[str, Any] | None:
        """A public dataset's record (``PUBLIC_KEY``: sealed tasks, the original dataset's
        identity), or None for a dataset that holds its truth."""
        found = self.extra.get(PUBLIC_KEY)
        return found if isinstance(found, dict) else None

    def require_task(self, task_id: str, where: str | Path) -> None:
        """A ``UserError`` in one line when this dataset cannot serve ``task_id``."""
        reason = self.unavailable_tasks.get(task_id)
        if reason:
            raise UserError(f"--task {task_id}: not available in {where} ({reason})")

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "source": self.source,
            "fingerprint": self.fingerprint,
            "n_samples": self.n_samples,
            "schema_version": SCHEMA_VERSION,
            **self.extra,
        }


def empty_row() -> dict[str, Any]:
    """A row with every column at its 'unknown' value."""
    defaults = {"str": "", "int": 0, "float": float("nan"), "bool": False}
    return {col: defaults[kind] for col, (kind, _) in SCHEMA.items()}


def normalise(df: pd.DataFrame) -> pd.DataFrame:
    """Order columns, fill missing ones and cast dtypes to the schema."""
    df = df.copy()
    base = empty_row()
    for col in COLUMNS:
        if col not in df.columns:
            df[col] = base[col]
    df = df[list(COLUMNS)]
    for col, (kind, _) in SCHEMA.items():
        if kind == "str":
            df[col] = df[col].fillna("").astype(str)
        elif kind == "int":
            df[col] = df[col].astype("int64")
        elif kind == "float":
            df[col] = df[col].astype("float64")
        elif kind == "bool":
            df[col] = df[col].astype(bool)
    return df.reset_index(drop=True)


def fingerprint(df: pd.DataFrame) -> str:
    """Content hash of a manifest (independent of the Parquet writer's version)."""
    buf = io.StringIO()
    normalise(df).to_csv(buf, index=False, lineterminator="\n", float_format="%.6g")
    return "sha256:" + hashlib.sha256(buf.getvalue().encode("utf-8")).hexdigest()[:32]


#: the columns of the truth fingerprint: ids, every task's split membership, labels, sizes
TRUTH_COLUMNS = ("sample_id", "species", *FEWSHOT_COLUMNS, *FLAG_COLUMNS, "size_cm")


def truth_fingerprint(folder: str | Path, df: pd.DataFrame, class_texts: dict | None = None) -> str:
    """Hash of what scores are computed against, independent of how the photos rendered:
    ``TRUTH_COLUMNS`` of every row (sorted by id; sizes to 1e-4 cm), the pixels of the masks
    of the segmentation set (by the scorer's reader, decoded, so no PNG encoder enters it)
    and the class texts. Equal on two machines whose images differ in their last bits."""
    from minbench.cards import cards_of_kind
    from minbench.data.masks import BadMask, read_truth_mask

    df = normalise(df).sort_values("sample_id", kind="stable").reset_index(drop=True)
    h = hashlib.sha256()
    table = df[list(TRUTH_COLUMNS)].copy()
    table["size_cm"] = [f"{v:.4f}" if np.isfinite(v) else "" for v in table["size_cm"].to_numpy(np.float64)]
    h.update(table.to_csv(index=False, lineterminator="\n").encode("utf-8"))
    # the whole segmentation set, its validation part too: the truth, whichever part a card scores
    scored = sorted({int(i) for card in cards_of_kind("segmentation") for split in ("validation", "test")
                     for i in card.positions(df, split, allow_empty=True)})
    for row in df.iloc[scored].itertuples(index=False):
        if not row.mask_path:  # a public dataset's sealed row: its mask is in the truth bundle
            continue
        try:
            mask = read_truth_mask(Path(folder) / row.mask_path, size=(int(row.width), int(row.height)),
                                   sample_id=row.sample_id)
        except BadMask:  # the scorer and `data check` name it; the truth is "no readable mask"
            h.update(f"{row.sample_id}:unreadable:".encode("utf-8"))
            continue
        h.update(f"{row.sample_id}:{mask.shape[0]}x{mask.shape[1]}:".encode("utf-8"))
        h.update(np.packbits(mask.astype(bool)).tobytes())
    texts = class_texts if isinstance(class_texts, dict) else {}
    h.update(json.dumps(sorted((str(k), str(v)) for k, v in texts.items()), ensure_ascii=False).encode("utf-8"))
    return "sha256:" + h.hexdigest()[:32]


def validate(df: pd.DataFrame, where: str = "manifest", *, public: bool = False) -> list[str]:
    """Schema problems of a manifest table, each as a one-line message (empty = sound).
    ``public``: a public dataset's (``PUBLIC_KEY``), whose sealed test rows have no species,
    mask or size: those rows are not refused for it."""
    problems = []
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        return [f"{where}: missing columns {', '.join(missing)}"]
    dup = df["sample_id"][df["sample_id"].duplicated()]
    if len(dup):
        problems.append(f"{where}: duplicate sample_id {dup.iloc[0]!r} ({len(dup)} duplicates)")
    if (df["sample_id"] == "").any():
        problems.append(f"{where}: {(df['sample_id'] == '').sum()} rows with empty sample_id")
    if (df["species"] == "").any() and not public:
        problems.append(f"{where}: {(df['species'] == '').sum()} rows with empty species")
    for col in FEWSHOT_COLUMNS:
        bad = ~df[col].isin(FEWSHOT_VALUES)
        if bad.any():
            problems.append(f"{where}: column {col} has value {df[col][bad].iloc[0]!r} (allowed: train, test, '')")
    seg_no_mask = df["segmentation"] & (df["mask_path"] == "")
    if seg_no_mask.any() and not public:
        problems.append(f"{where}: {seg_no_mask.sum()} segmentation rows without mask_path")
    size_bad = df["size"] & ~(np.isfinite(df["size_cm"]) & (df["size_cm"] > 0))
    if size_bad.any() and not public:
        problems.append(f"{where}: {size_bad.sum()} size rows without a positive size_cm")
    for col in ("bbox", "cube_bbox"):
        # Plain lists of the filled cells only: iterating pandas' string arrays is ~100x slower.
        filled = (df[col] != "").to_numpy()
        ids = df["sample_id"].to_numpy()[filled].tolist()
        for sid, text in zip(ids, df[col].to_numpy()[filled].tolist()):
            if parse_box(text) is None:
                problems.append(f"{where}: row {sid!r} column {col} is not a box [x1,y1,x2,y2]: {text[:60]!r}")
                break
    return problems


def write_dataset(folder: str | Path, df: pd.DataFrame, *, name: str, version: str, source: str,
                  extra: dict[str, Any] | None = None) -> DatasetInfo:
    """Write ``manifest.parquet`` and ``dataset.json`` atomically into ``folder`` (whose
    masks are already written: the truth fingerprint reads the scored ones)."""
    folder = Path(folder)
    df = normalise(df)
    problems = validate(df, public=PUBLIC_KEY in (extra or {}))
    if problems:
        raise UserError(problems[0])
    extra = dict(extra or {})
    extra[TRUTH_FINGERPRINT_KEY] = truth_fingerprint(folder, df, extra.get(CLASS_TEXTS_KEY))
    info = DatasetInfo(name=name, version=version, source=source, fingerprint=fingerprint(df),
                       n_samples=len(df), extra=extra)
    with atomic_path(folder / MANIFEST_FILE) as tmp:
        df.to_parquet(tmp, index=False)
    write_json_atomic(folder / DATASET_FILE, info.to_json())
    return info


def read_manifest(folder: str | Path) -> pd.DataFrame:
    """Read and validate a dataset folder's manifest; a ``UserError`` names what is wrong."""
    path = Path(folder) / MANIFEST_FILE
    if not path.is_file():
        raise UserError(f"{path}: no manifest here (run `minbench data generate` or `minbench data prepare`)")
    try:
        df = pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises many types for a damaged file
        raise UserError(f"{path}: not a readable Parquet manifest ({type(exc).__name__}: {exc})") from None
    problems = validate(df, where=str(path), public=is_public(folder))
    if problems:
        raise UserError(problems[0])
    return normalise(df)


def is_public(folder: str | Path) -> bool:
    """Whether ``folder``'s ``dataset.json`` marks a public dataset (``PUBLIC_KEY``)."""
    try:
        raw = read_json(Path(folder) / DATASET_FILE, "dataset description", missing=None)
    except UserError:
        return False
    return isinstance(raw, dict) and isinstance(raw.get(PUBLIC_KEY), dict)


def read_info(folder: str | Path) -> DatasetInfo:
    """Read ``dataset.json`` of a dataset folder; a ``UserError`` names what is wrong."""
    path = Path(folder) / DATASET_FILE
    raw = read_json(path, "dataset description", missing=None)
    if raw is None:
        raise UserError(f"{path}: missing (not a prepared minbench dataset)")
    known = ("name", "version", "source", "fingerprint", "n_samples")
    if not isinstance(raw, dict):
        raise UserError(f"{path}: not a valid dataset description (a JSON object is expected)")
    lacking = [k for k in known if k not in raw]
    if lacking:
        raise UserError(f"{path}: not a valid dataset description (no {', '.join(map(repr, lacking))})")
    return DatasetInfo(**{k: raw[k] for k in known}, extra={k: v for k, v in raw.items() if k not in known},
                       folder=Path(folder))


@lru_cache(maxsize=8)
def _truth_of_folder(folder: Path, image_fingerprint: str, class_texts_json: str) -> str:
    # keyed by the manifest's fingerprint too: a folder whose manifest changed is worked out again
    return truth_fingerprint(folder, read_manifest(folder), json.loads(class_texts_json))
