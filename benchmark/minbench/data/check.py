"""``minbench data check``: is a prepared dataset sound?

Checks the manifest schema and fingerprint, that every image and mask exists and
decodes, that sizes agree with the manifest (masks at their image's size), and that
the splits do not leak: a few-shot subset's train and test share no image, and no
zero-shot class is a class of any few-shot subset. Works on any manifest (the real
release or the embedded synth data).

Photos decode through ``data.decode`` and masks through ``data.masks``' truth rule (the
data module's and the scorer's own readers), so a file that passes here also loads there,
and a refused mask gets the very line the scorer would print. A truth mask with no
mineral pixel is a warning (count and sample ids). Decoding all of 30k photos is the slow
part: JPEGs decode in draft mode (DCT scaled to 1/8, which still reads every byte of the
entropy-coded data, so a truncated file fails as at full size) on a thread pool (Pillow
releases the GIL while decoding). ``quick=True`` reads only the headers.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import pandas as pd

from minbench.data import manifest
from minbench.data.decode import BadImage, load_rgb
from minbench.data.masks import BadMask, check_truth_mask_header, read_truth_mask
from minbench.data.photo import read_image_info
from minbench.errors import UserError

_EXAMPLES = 3


@dataclass
class CheckReport:
    """Result of ``check_dataset``: ``ok`` when there are no problems (warnings allowed)."""

    folder: str
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems


def _unsafe(rel: str) -> bool:
    p = rel.replace("\\", "/")
    return p.startswith("/") or ".." in PurePosixPath(p).parts or (len(p) > 1 and p[1] == ":")


def _check_files(folder: Path, df: pd.DataFrame, quick: bool, workers: int) -> dict[str, list[str]]:
    """Per problem kind, one message per affected row."""
    found: dict[str, list[str]] = {"missing": [], "unsafe_path": [], "undecodable": [], "size_mismatch": [],
                                   "mask_missing": [], "mask_undecodable": [], "mask_unusual_mode": [],
                                   "mask_size_mismatch": [], "mask_empty": []}
    jobs = []
    for sid, rel, w, h, mask in zip(df["sample_id"], df["image_path"], df["width"], df["height"], df["mask_path"]):
        for kind, path in (("image", rel), ("mask", mask)):
            if not path:
                continue
            if _unsafe(path):
                found["unsafe_path"].append(f"{sid}: {path}")
            elif kind == "image" and not (folder / path).is_file():
                found["missing"].append(f"{sid}: {path}")
            else:
                jobs.append((kind, sid, folder / path, (int(w), int(h))))

    def run(job):
        kind, sid, path, expected = job
        if kind == "mask":  # the truth rule and its verdicts, exactly as the data module and the scorer read it
            try:
                if quick:
                    check_truth_mask_header(path, size=expected, sample_id=sid)
                    return kind, sid, path, "", ""
                mask = read_truth_mask(path, size=expected, sample_id=sid)
            except BadMask as exc:
                return kind, sid, path, exc.kind, str(exc)
            return kind, sid, path, "" if mask.any() else "empty", ""
        if quick:
            info = read_image_info(path)
            size, why = ((info.width, info.height), "") if info else (None, "header unreadable")
        else:
            try:  # decode exactly as the data module will, so what passes here loads there
                _, (h, w) = load_rgb(path, draft=1)  # draft: JPEG DCT scaled to 1/8, every byte still read
                size, why = (w, h), ""
            except BadImage as exc:
                size, why = None, str(exc)
        if size is None:
            return kind, sid, path, "unreadable", f"{sid}: {path.name} ({why})"
        if size != expected:
            return kind, sid, path, "size", (f"{sid}: image is {size[0]}x{size[1]}, manifest says "
                                             f"{expected[0]}x{expected[1]}")
        return kind, sid, path, "", ""

    mask_kinds = {"missing": "mask_missing", "unreadable": "mask_undecodable", "mode": "mask_unusual_mode",
                  "size": "mask_size_mismatch", "empty": "mask_empty"}
    image_kinds = {"unreadable": "undecodable", "size": "size_mismatch"}
    with ThreadPoolExecutor(workers) as pool:
        for kind, sid, path, verdict, message in pool.map(run, jobs):
            if not verdict:
                continue
            if kind == "mask":
                found[mask_kinds[verdict]].append(message if verdict != "empty" else f"{sid}: {path.name}")
            else:
                found[image_kinds[verdict]].append(message)
    return found


def _split_summary(df: pd.DataFrame, problems: list[str], warnings: list[str]) -> dict[str, Any]:
    """Rows and classes of every task's split (keyed by the card's manifest column), asking
    the task cards which rows those are; leaks between splits are problems or warnings."""
    from minbench.cards import cards_of_kind

    out: dict[str, Any] = {}
    fewshot = cards_of_kind("classification")
    split_of = {(card.split_column, split): card.rows(df, split, allow_empty=True)
                for card in fewshot for split in ("train", "test")}
    for card in fewshot:
        col = card.split_column
        train, test = split_of[col, "train"], split_of[col, "test"]
        out[col] = {"train": len(train), "test": len(test), "classes": len(card.classes(df)),
                    "test_classes": test["species"].nunique()}
        shared = set(train["image_path"]) & set(test["image_path"])
        if shared:
            problems.append(f"{col}: {len(shared)} images are in both train and test "
                            f"(e.g. {sorted(shared)[0]})")
        unseen = sorted(set(test["species"]) - set(train["species"]) - {""})  # "": a public dataset's sealed row
        if unseen:
            warnings.append(f"{col}: {len(unseen)} test classes have no train rows (e.g. {unseen[0]!r})")
    # Tasks train separately, but a photo that is test in one subset and train in another
    # leaks if someone pretrains on the larger subset: worth knowing, not fatal.
    for a in fewshot:
        for b in fewshot:
            crossed = len(split_of[a.split_column, "test"].index.intersection(split_of[b.split_column, "train"].index))
            if a is not b and crossed:
                warnings.append(f"{crossed} images are test in {a.split_column} but train in {b.split_column}")
    for kind in ("zeroshot", "segmentation", "size"):  # their test rows (zero-shot trains on every other class)
        for card in cards_of_kind(kind):
            rows = card.rows(df, "test", allow_empty=True)
            out[card.split_column] = {"rows": len(rows)}
            if kind != "zeroshot":
                continue
            out[card.split_column]["classes"] = rows["species"].nunique()
            for other in fewshot:
                overlap = sorted(set(rows["species"]) & set(other.classes(df)) - {""})  # "": sealed rows
                if overlap:
                    problems.append(f"{card.split_column}: {len(overlap)} classes are also {other.split_column} "
                                    f"classes (e.g. {', '.join(repr(c) for c in overlap[:_EXAMPLES])})")
    return out


def check_dataset(data_dir: str | os.PathLike, *, quick: bool = False, workers: int | None = None) -> CheckReport:
    """Check a prepared dataset folder; problems make ``report.ok`` False."""
    folder = Path(data_dir)
    report = CheckReport(folder=str(folder))
    path = folder / manifest.MANIFEST_FILE
    if not path.is_file():
        raise UserError(f"{path}: no manifest here (run `minbench data generate` or `minbench data prepare`)")
    try:
        raw = pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises many types for a damaged file
        raise UserError(f"{path}: not a readable Parquet manifest ({type(exc).__name__}: {exc})") from None
    report.problems += manifest.validate(raw, where=str(path), public=manifest.is_public(folder))
    missing_cols = [c for c in manifest.COLUMNS if c not in raw.columns]
    if missing_cols:
        return report
    df = manifest.normalise(raw)
    try:
        info = manifest.read_info(folder)
        fp = manifest.fingerprint(df)
        if info.fingerprint != fp:
            report.problems.append(f"{folder / manifest.DATASET_FILE}: fingerprint {info.fingerprint} does not match "
                                   f"the manifest's {fp} (manifest changed after it was written?)")
        report.summary["dataset"] = {"name": info.name, "version": info.version, "fingerprint": info.fingerprint}
    except UserError as exc:
        report.problems.append(str(exc))

    report.summary["rows"] = len(df)
    report.summary["classes"] = int(df["species"].nunique())
    report.summary["splits"] = _split_summary(df, report.problems, report.warnings)

    files = _check_files(folder, df, quick, workers or min(32, os.cpu_count() or 2))
    report.summary["files"] = {k: len(v) for k, v in files.items()}
    report.summary["decoded"] = "headers only (quick)" if quick else "every image and mask decoded, JPEG draft mode"
    messages = {
        "missing": "image files missing", "unsafe_path": "paths leave the dataset folder",
        "undecodable": "images fail to decode", "size_mismatch": "images differ in size from the manifest",
        "mask_missing": "mask files missing", "mask_undecodable": "masks fail to decode",
        "mask_unusual_mode": "masks have an unusual mode",
        "mask_size_mismatch": "masks differ in size from their image",
        "mask_empty": "truth masks have no mineral pixel (every method scores IoU 0 on them unless it predicts "
                      "an empty mask)",
    }
    for kind, rows in files.items():
        if not rows:
            continue
        line = f"{len(rows)} {messages[kind]}: {'; '.join(rows[:_EXAMPLES])}"
        (report.warnings if kind == "mask_empty" else report.problems).append(line)
    report.summary["details"] = {k: v for k, v in files.items() if v}
    return report


def print_report(report: CheckReport) -> None:
    """Print a check report as rich tables, problems last."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = Console()
    s = report.summary
    t = Table(title=f"dataset check: {report.folder}")
    t.add_column("split / task")
    t.add_column("train", justify="right")
    t.add_column("test / rows", justify="right")
    t.add_column("classes", justify="right")
    ds = s.get("dataset", {})
    t.add_row(f"all ({ds.get('name', '?')} {ds.get('version', '')})", "", str(s.get("rows", "?")),
              str(s.get("classes", "?")))
    for col, v in s.get("splits", {}).items():
        if "train" in v:  # a task with a train split
            t.add_row(col, str(v["train"]), str(v["test"]), str(v["classes"]))
        else:
            t.add_row(col, "", str(v["rows"]), str(v.get("classes", "")))
    console.print(t)
    if "files" in s:
        f = Table(title=f"files ({s.get('decoded', '')})")
        f.add_column("check")
        f.add_column("count", justify="right")
        for kind, n in s["files"].items():
            f.add_row(kind.replace("_", " "), Text(str(n), style="red" if n and kind != "mask_empty" else ""))
        console.print(f)
    for w in report.warnings:
        console.print(Text("warning: ", style="yellow") + Text(w), highlight=False)
    for p in report.problems:
        console.print(Text("problem: ", style="bold red") + Text(p), highlight=False)
    if report.ok:
        console.print(Text("OK: the dataset is sound", style="green"))
    else:
        console.print(Text(f"{len(report.problems)} problem(s) found", style="bold red"))
