"""The real MineralImage5k release -> the canonical manifest (``minbench data prepare``).

``source`` is the unpacked release (``data/<collection>/...`` photos, the CSVs,
``segm/img`` + ``segm/mask``) or a folder holding ``mineral_images.zip`` and
``segm.tar`` beside the CSVs. The output folder gets:

- ``raw/mineral_images``, ``raw/segm``: links to the unpacked folders, or the archives
  safely extracted there once (``release_layout``). The ~31k photos are never copied;
  manifest paths go through ``raw/`` and resolve against the output folder.
- ``masks/<sample_id>.png``: segmentation masks binarised by the truth rule of
  ``data.masks`` (EXIF applied; any bright colour, palette or 16-bit value = mineral) to
  0/255 at the size of the row's image. Masks with no mineral pixel are listed in the
  report (``empty_masks``) and named on stderr.
- ``manifest.parquet`` + ``dataset.json``; ``missing_images.csv`` (rows left out for
  want of a readable photo, with their collection); ``prepare_report.json``.

Decisions (also recorded in ``dataset.json``):

- Splits follow a split CSV's own split column when it has one, else a seeded
  stratified 80/20 train/test split (``release_splits``).
- Zero-shot: the paper evaluates zero-shot on all 5,139 classes, but a model trained
  on a few-shot subset has seen some of them. The benchmark's zero-shot set is every
  row with a photo whose species is in no few-shot subset (train or test), so it is
  disjoint from every class a baseline trains on.
- Class-level text (what a zero-shot model may be told about a class it never saw): the
  release gives, per class, only its English name, which is the class label (``species``).
  ``dataset.json`` therefore holds no ``class_descriptions`` and a zero-shot class is named
  by its label in prompt templates. The per-sample ``description`` and ``variety``
  belong to samples, so they are never turned into a class's text (a zero-shot class's
  samples are the test set); a model trains on its training rows' descriptions only.
- Orientation: width/height are the displayed size (EXIF orientation applied), and
  ``bbox``/``text_boxes`` are in that frame; loaders must apply EXIF orientation (PIL
  ``ImageOps.exif_transpose``; ``cv2.imread`` does by default). ``mineral_boxes`` is kept
  as the release gives it.
- Masks: matched to samples by file stem; one of another size than the photo takes
  ``segm/img``'s copy of the photo, else is resized when the aspect ratios agree, else is
  dropped and counted (``release_masks``).
- Rows whose CSV is cut at the end (an interrupted download) are skipped with a
  warning naming the line (``csv_schema``).
"""

from __future__ import annotations

import math
import os
import sys
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from minbench.cards import all_cards, cards_of_kind
from minbench.data import csv_schema as cs
from minbench.data import manifest
from minbench.data.photo import read_image_infos
from minbench.data.release_boxes import best_mineral_box, text_boxes_pixels
from minbench.data.release_layout import (IMAGES_ZIP, SEGM_TAR, SampleRecord, collection_of, file_index, find_file,
                                          norm_path, prefix_in, resolve_images, resolve_segm)
from minbench.data.release_masks import MASKS_DIR, attach_masks
from minbench.data.release_splits import SPLIT_SEED, TEST_FRACTION, read_split_csv, seeded_split
from minbench.errors import UserError
from minbench.io import file_lock, write_json_atomic, write_text_atomic

NAME = "mineralimage5k"
VERSION = "2023.1"
FULL_FILE = "minerals_full.csv"
SIZE_FILE = "minerals_size.csv"
SPLIT_FILES = {"fewshot_10": "minerals_10.csv", "fewshot_98": "minerals_98.csv", "fewshot_360": "minerals_360.csv"}
AUTHORS_CUBE_EDGE_CM = 1.27  # the authors' size script takes the reference cube as 1.27 cm a side
REPORT_FILE = "prepare_report.json"
MISSING_FILE = "missing_images.csv"


@dataclass
class PrepareReport:
    """What ``prepare`` did: counts, what it left out and why, warnings."""

    source: str
    out: str
    rows_total: int = 0
    rows_in_manifest: int = 0
    missing_images: int = 0
    missing_by_collection: dict[str, int] = field(default_factory=dict)
    left_out: dict[str, int] = field(default_factory=dict)
    splits: dict[str, dict[str, int]] = field(default_factory=dict)
    zeroshot: dict[str, int] = field(default_factory=dict)
    segmentation: dict[str, int] = field(default_factory=dict)
    empty_masks: list[str] = field(default_factory=list)  # sample ids whose truth mask has no mineral pixel
    size: dict[str, int] = field(default_factory=dict)
    split_policy: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    unavailable_tasks: dict[str, str] = field(default_factory=dict)
    fingerprint: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def prepare(source: str | os.PathLike, out: str | os.PathLike, *, progress: bool = False) -> PrepareReport:
    """Build ``out/manifest.parquet`` (+ reports) from the release at ``source``. Idempotent:
    the same release gives the same manifest fingerprint."""
    source, out = Path(source).expanduser(), Path(out).expanduser()
    if not source.is_dir():
        raise UserError(f"--source {source}: not a folder (give the release folder, or the folder "
                        f"holding {IMAGES_ZIP}, {SEGM_TAR} and the CSVs)")
    out.mkdir(parents=True, exist_ok=True)
    with file_lock(out / ".prepare.lock"):
        report = _prepare(source, out, progress)
    if progress:
        print_summary(report)
    return report


def _prepare(source: Path, out: Path, progress: bool) -> PrepareReport:
    report = PrepareReport(source=str(source.resolve()), out=str(out.resolve()))
    left_out: Counter[str] = Counter()
    full_csv = find_file(source, FULL_FILE)
    if full_csv is None:
        raise UserError(f"--source {source}: no {FULL_FILE} (the release's table of all samples) there")
    # A partial release prepares what is there; the tasks it cannot serve are named.
    split_csvs = {col: find_file(source, name) for col, name in SPLIT_FILES.items()}
    absent = {col: f"{SPLIT_FILES[col]} is not in the release folder" for col, p in split_csvs.items() if p is None}
    split_csvs = {col: p for col, p in split_csvs.items() if p is not None}

    get, records = _read_full(full_csv, report, left_out)
    images_prefix = _attach_images(source, out, records, report, progress)
    masks = attach_masks(source, out, records, report.warnings)
    report.segmentation, report.empty_masks = masks.counts, masks.empty
    if masks.empty:  # a mask with no mineral pixel scores 0 IoU for every method that finds one: say so now
        print(f"data prepare: {len(masks.empty)} truth masks have no mineral pixel by the truth rule (e.g. "
              f"{', '.join(masks.empty[:3])}); listed in {REPORT_FILE} (empty_masks)", file=sys.stderr)
    kept, missing_rows = _split_off_missing(records, report, left_out)
    df = _manifest_rows(kept, get, full_csv, report, left_out)
    if df.empty:
        raise UserError(f"--source {source}: no row of {FULL_FILE} has a readable photo; nothing to prepare")
    _assign_fewshot(df, split_csvs, records, report)
    for col in absent:
        df[col] = ""
    if absent:
        report.warnings.append(f"the zero-shot set excludes the classes of the few-shot subsets present only "
                               f"({', '.join(SPLIT_FILES[c] for c in absent)} missing), so it differs from "
                               "the complete release's")
    size_csv = find_file(source, SIZE_FILE)
    _attach_sizes(df, size_csv, records, report, source)
    if size_csv is None:
        absent["size"] = f"{SIZE_FILE} is not in the release folder"
    if not report.segmentation.get("rows"):
        absent["segmentation"] = (f"no segmentation masks ({SEGM_TAR} or segm/mask) in the release folder"
                                  if resolve_segm(source, out, []) is None else "no mask matches a sample with a photo")
    report.unavailable_tasks = unavailable_tasks(df, absent)
    report.rows_in_manifest = len(df)
    report.left_out = dict(sorted(left_out.items()))

    missing = pd.DataFrame(missing_rows, columns=["sample_id", "path", "collection", "reason"])
    write_text_atomic(out / MISSING_FILE, missing.to_csv(index=False, lineterminator="\n"))
    info = manifest.write_dataset(out, df, name=NAME, version=VERSION, source=NAME, extra={
        "source_root": report.source,
        "images_root": images_prefix.rstrip("/") or ".",
        "split_policy": report.split_policy,
        "zeroshot_policy": "rows whose species is in no few-shot subset (train or test): the paper's "
                           "zero-shot set (all classes) minus the few-shot classes",
        "class_text_policy": "no class descriptions: the release names a class by its English name only "
                             "(the label); sample descriptions and varieties are never a class's text",
        "orientation": "width/height/bbox/text_boxes in the displayed frame (EXIF orientation applied)",
        "masks": "masks/<sample_id>.png, 255 = mineral, at the image's displayed size",
        manifest.CUBE_EDGE_KEY: AUTHORS_CUBE_EDGE_CM,
        "prepare_report": REPORT_FILE,
        "missing_images": MISSING_FILE,
        "unavailable_tasks": report.unavailable_tasks,
    })
    report.fingerprint = info.fingerprint
    write_json_atomic(out / REPORT_FILE, report.to_json())
    # Only now that the new manifest is in place: an interrupted run keeps the old one valid.
    for stale in (out / MASKS_DIR).glob("*.png"):
        if stale.name not in masks.written:
            stale.unlink()
    return report


def _read_full(full_csv: Path, report: PrepareReport, left_out: Counter
               ) -> tuple[dict[str, list[str]], list[SampleRecord]]:
    """minerals_full.csv: columns by name (or position), one record per unique sample id."""
    full = cs.read_csv(full_csv, {a for _, al in cs.FULL_FIELDS for a in al})
    cols = cs.map_columns(full, cs.FULL_FIELDS, cs.FULL_REQUIRED, positional=True)
    report.warnings += full.warnings
    report.rows_total = len(full.rows)
    if not full.rows:
        raise UserError(f"{full_csv}: no data rows")
    get = {name: cs.column(full, idx) for name, idx in cols.items()}
    records, seen = [], set()
    for i, sid in enumerate(get["sample_id"]):
        if not sid:
            left_out["empty_sample_id"] += 1
            if left_out["empty_sample_id"] <= 3:
                report.warnings.append(f"{full_csv} line {full.lines[i]}: empty sample id; row skipped")
            continue
        if sid in seen:
            left_out["duplicate_sample_id"] += 1
            continue
        seen.add(sid)
        rel = norm_path(get["path"][i])
        records.append(SampleRecord(i=i, sample_id=sid, rel=rel, raw_path=get["path"][i],
                                    collection=collection_of(rel) if rel else ""))
    if left_out["duplicate_sample_id"]:
        report.warnings.append(f"{full_csv}: {left_out['duplicate_sample_id']} rows repeat an earlier sample id; "
                               "the first is kept")
    return get, records


def _attach_images(source: Path, out: Path, records: list[SampleRecord], report: PrepareReport, progress: bool) -> str:
    """Find each record's photo and read its header; returns the manifest path prefix of the image root."""
    root = resolve_images(source, out, [r.rel for r in records if r.rel][:300], FULL_FILE, report.warnings)
    prefix = prefix_in(out, root, "mineral_images")
    index = file_index(root)
    found = [(r, index.get(r.rel) or index.get(r.rel.lower())) for r in records if r.rel]
    found = [(r, f) for r, f in found if f]
    infos = read_image_infos([root / f for _, f in found], progress=progress)
    for (r, f), info in zip(found, infos):
        r.image_path, r.info = f"{prefix}{f}", info
    return prefix


def _split_off_missing(records: list[SampleRecord], report: PrepareReport, left_out: Counter
                       ) -> tuple[list[SampleRecord], list[dict[str, str]]]:
    """Records with a readable photo, and the rest as rows of missing_images.csv."""
    kept, missing = [], []
    for r in records:
        reason = ("bad_path" if r.rel is None else "no_image" if not r.image_path
                  else "unreadable_image" if r.info is None else None)
        if reason:
            missing.append({"sample_id": r.sample_id, "path": r.raw_path, "collection": r.collection, "reason": reason})
            left_out[reason] += 1
        else:
            kept.append(r)
    report.missing_images = len(missing)
    report.missing_by_collection = dict(sorted(Counter(m["collection"] for m in missing).items()))
    return kept, missing


def _manifest_rows(kept: list[SampleRecord], get: dict[str, list[str]], full_csv: Path, report: PrepareReport,
                   left_out: Counter) -> pd.DataFrame:
    rows = []
    bad: Counter[str] = Counter()
    for r in kept:
        i, info = r.i, r.info
        species = " ".join(get["en_name"][i].lower().split())
        if not species:
            left_out["no_english_name"] += 1
            continue
        bbox = best_mineral_box(get["mineral_boxes"][i], info)
        text = text_boxes_pixels(get["text_boxes"][i], info)
        bad["mineral_boxes"] += bbox is None
        bad["text_boxes"] += text is None
        row = manifest.empty_row()
        row.update(
            sample_id=r.sample_id, image_path=r.image_path, width=info.width, height=info.height,
            species=species, species_ru=get["ru_species"][i] or get["ru_name"][i].lower(),
            variety=get["ru_variety"][i], satellites=get["en_satellites"][i], collection=r.collection,
            description=get["en_description"][i], text_boxes=text or "", mineral_boxes=get["mineral_boxes"][i],
            bbox=bbox or "", mask_path=r.mask_path, segmentation=bool(r.mask_path), source=NAME,
        )
        rows.append(row)
    for col, n in bad.items():
        if n:
            report.warnings.append(f"{full_csv}: {n} rows have an unparsable {col} value; left empty")
    if left_out["no_english_name"]:
        report.warnings.append(f"{full_csv}: {left_out['no_english_name']} rows with a photo have no English "
                               "name; left out")
    return pd.DataFrame(rows, columns=list(manifest.COLUMNS))


def _assign_fewshot(df: pd.DataFrame, split_csvs: dict[str, Path], records: list[SampleRecord],
                    report: PrepareReport) -> None:
    """Fill the fewshot_* columns from the split CSVs, then the zeroshot flag; the report
    counts each task's rows as its card selects them."""
    cards = {card.split_column: card for card in cards_of_kind("classification")}
    present = dict(zip(df["sample_id"], df["species"]))
    path_to_id = {r.rel.lower(): r.sample_id for r in records if r.rel}
    all_ids = {r.sample_id for r in records}
    fewshot_classes: set[str] = set()
    for col, path in split_csvs.items():
        ids, split, warnings = read_split_csv(path, all_ids, path_to_id, full_name=FULL_FILE)
        report.warnings += warnings
        keep = [k for k, sid in enumerate(ids) if sid in present]
        if len(keep) < len(ids):
            report.warnings.append(f"{path}: {len(ids) - len(keep)} of its {len(ids)} samples have no photo; left out")
        if split is not None:
            assign = {ids[k]: split[k] for k in keep}
            report.split_policy[col] = f"{path.name}: its split column"
        else:
            kept_ids = [ids[k] for k in keep]
            assign = seeded_split(kept_ids, [present[s] for s in kept_ids])
            report.split_policy[col] = (f"{path.name}: seeded stratified split, test fraction {TEST_FRACTION}, "
                                        f"seed {SPLIT_SEED}")
        df[col] = df["sample_id"].map(assign).fillna("")
        card = cards[col]
        classes = set(card.classes(df))
        fewshot_classes |= classes
        report.splits[col] = {"train": len(card.positions(df, "train")),
                              "test": len(card.positions(df, "test", allow_empty=True)), "classes": len(classes)}
    df["zeroshot"] = ~df["species"].isin(fewshot_classes)
    (zeroshot,) = cards_of_kind("zeroshot")
    rows = zeroshot.rows(df, "test", allow_empty=True)
    report.zeroshot = {"rows": len(rows), "classes": rows["species"].nunique(),
                       "classes_excluded_as_fewshot": len(fewshot_classes)}


def _attach_sizes(df: pd.DataFrame, size_csv: Path | None, records: list[SampleRecord], report: PrepareReport,
                  source: Path) -> None:
    """size_cm from minerals_size.csv (SIZESM, cm), joined on path_final, else on a unique file name."""
    stats: Counter[str] = Counter()
    df["size_cm"] = math.nan
    if size_csv is None:
        report.warnings.append(f"--source {source}: no {SIZE_FILE}; the size set is empty")
    else:
        sizes = cs.read_csv(size_csv, {a for _, al in cs.SIZE_FIELDS for a in al})
        cols = cs.map_columns(sizes, cs.SIZE_FIELDS, cs.SIZE_REQUIRED, positional=False)
        report.warnings += sizes.warnings
        present = set(df["sample_id"])
        by_rel = {r.rel.lower(): r.sample_id for r in records if r.rel}
        names = Counter(Path(k).name for k in by_rel)
        by_name = {Path(k).name: v for k, v in by_rel.items() if names[Path(k).name] == 1}
        size_of: dict[str, float] = {}
        for raw, value in zip(cs.column(sizes, cols["path"]), cs.column(sizes, cols["size_cm"])):
            rel = (norm_path(raw) or "").lower()
            sid = by_rel.get(rel) or by_name.get(Path(rel).name)
            try:
                cm = float(value.replace(",", "."))  # decimal commas occur in Russian spreadsheets
            except ValueError:
                cm = math.nan
            if sid is None:
                stats["unmatched"] += 1
            elif sid not in present:
                stats["no_image"] += 1
            elif not (math.isfinite(cm) and cm > 0):
                stats["invalid"] += 1
            elif sid in size_of:
                stats["duplicate"] += 1
            else:
                size_of[sid] = cm
        df["size_cm"] = df["sample_id"].map(size_of).astype("float64")
        explain = {"unmatched": f"name no photo path of {FULL_FILE}", "no_image": "belong to samples without a photo",
                   "invalid": "have no positive size", "duplicate": "repeat a path (the first is kept)"}
        for what, n in sorted(stats.items()):
            report.warnings.append(f"{size_csv}: {n} rows {explain[what]}; ignored")
    df["size"] = df["size_cm"].notna()
    (size,) = cards_of_kind("size")
    report.size = {"rows": len(size.positions(df, "test", allow_empty=True)), **dict(sorted(stats.items()))}


def unavailable_tasks(df: pd.DataFrame, absent: dict[str, str]) -> dict[str, str]:
    """Task id -> why this manifest cannot serve it: the release lacks the file it needs
    (``absent``: manifest column or task kind -> reason), or its test split is empty."""
    out = {}
    for card in all_cards().values():
        reason = absent.get(card.split_column) or absent.get(card.kind)
        if reason is None and (card.split_column not in df.columns
                               or not len(card.positions(df, "test", allow_empty=True))):
            reason = "no test rows with a photo"
        if reason:
            out[card.id] = reason
    return out


def print_summary(report: PrepareReport) -> None:
    """A rich summary: rows, photos found, missing by collection, per split."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = Console()
    t = Table(title=f"MineralImage5k -> {report.out}")
    t.add_column("what")
    t.add_column("rows", justify="right")
    t.add_column("classes / note", justify="right")
    t.add_row(FULL_FILE, str(report.rows_total), "")
    t.add_row("in the manifest (photo found)", str(report.rows_in_manifest), "")
    t.add_row("without a photo (left out)", str(report.missing_images), MISSING_FILE)
    for coll, n in report.missing_by_collection.items():
        t.add_row(f"  missing in {coll or '?'}", str(n), "")
    for reason, n in report.left_out.items():
        if reason != "no_image":
            t.add_row(f"  left out: {reason}", str(n), "")
    for col, s in report.splits.items():
        t.add_row(f"{col} train / test", f"{s['train']} / {s['test']}", str(s["classes"]))
    t.add_row("zeroshot", str(report.zeroshot.get("rows", 0)), str(report.zeroshot.get("classes", 0)))
    t.add_row("segmentation", str(report.segmentation.get("rows", 0)), "")
    t.add_row("size", str(report.size.get("rows", 0)), "")
    console.print(t)
    for w in report.warnings:
        console.print(Text("warning: ", style="yellow") + Text(w), highlight=False)
    for task, reason in report.unavailable_tasks.items():
        console.print(Text("unavailable: ", style="yellow") + Text(f"{task}: {reason}"), highlight=False)
    console.print(Text(f"fingerprint {report.fingerprint}; report in {Path(report.out) / REPORT_FILE}"))
