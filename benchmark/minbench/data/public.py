"""Hidden-label packaging (``minbench data seal``): a public dataset and a separate truth bundle.

The **public dataset** is a dataset folder like any other (photos, ``manifest.parquet``,
``dataset.json``) whose test rows of the sealed tasks hold only what their card names public
(``data/seal.py``'s one rule: every truth column blanked, the schema kept); training rows keep
their truth; no mask of a sealed row is copied. ``dataset.json`` marks it public
(``manifest.PUBLIC_KEY``: the sealed tasks, the original dataset's name, version and
fingerprint, a zero-shot task's public candidate names); every task not sealed is listed as
unavailable there, so nothing is ever scored against a blanked row.

The **truth bundle** is a folder: ``truth.json`` (schema, the original dataset's identity,
the public dataset's fingerprint, per task its test ids and, optionally, a seeded,
class-stratified split of them into a ``dev`` part, whose scores are shown, and a ``final``
part, scored at the end), ``truth.parquet`` (the sealed rows as the original manifest holds
them, every column) and ``masks/`` of those rows. Put back into the public manifest
(``restore``) they give the original manifest, checked by its fingerprint, so a score
against the bundle is the score against the original dataset, digit for digit.

One row cannot be both: a test row of one sealed task that is a training row of another
(on the embedded data every few-shot test row is a zero-shot training row, and every size
test row a few-shot training row) would either leak the first task's answer or take a
labelled row from the second; ``seal`` refuses such a set of tasks in one line. Seal them
into separate public datasets.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from minbench.cards import TaskCard, all_cards, get_card
from minbench.data.manifest import (PUBLIC_KEY, TRUTH_FINGERPRINT_KEY, DatasetInfo, fingerprint, normalise, read_info,
                                    read_manifest)
from minbench.data.seal import blank_rows
from minbench.errors import UserError
from minbench.io import atomic_path, read_json, storage_errors, write_json_atomic

TRUTH_SCHEMA = "minbench-truth/1"
TRUTH_JSON = "truth.json"
TRUTH_ROWS = "truth.parquet"
PARTS = ("dev", "final")
#: what names the original dataset (its truth fingerprint is the key its boards are on)
IDENTITY_KEYS = ("name", "version", "source", "fingerprint", "truth_fingerprint")


@dataclass(frozen=True)
class TruthBundle:
    """A truth bundle as read back: its folder, the original dataset's identity, the public
    dataset's fingerprint, per task ``{"test_ids": [...], "parts": {"dev": [...], ...}}``
    and the sealed rows (every column, as the original manifest holds them)."""

    folder: Path
    dataset: dict[str, Any]
    public_fingerprint: str
    tasks: dict[str, dict[str, Any]]
    rows: pd.DataFrame

    def part_ids(self, task_id: str, part: str) -> list[str]:
        """The test ids of ``task_id``'s ``part`` (``dev`` or ``final``); a ``UserError``
        when the bundle records no such split."""
        parts = self.tasks[task_id].get("parts") or {}
        if part not in parts:
            raise UserError(f"--part {part}: {self.folder / TRUTH_JSON} records no {'/'.join(PARTS)} split of "
                            f"task {task_id} (seal with --private-fraction)")
        return list(parts[part])


def _cards(task_ids: Sequence[str] | None) -> list[TaskCard]:
    if not task_ids:
        raise UserError("--task: name the task(s) to seal (known: " + ", ".join(all_cards()) + ")")
    return [get_card(t) for t in dict.fromkeys(task_ids)]


def _refuse_conflicts(cards: list[TaskCard], df: pd.DataFrame, where: str) -> dict[str, np.ndarray]:
    """Each card's test positions; a ``UserError`` when a test row of one is a training row of another."""
    tests = {c.id: c.positions(df, "test", where) for c in cards}
    for a in cards:
        for b in cards:
            both = np.intersect1d(tests[a.id], b.positions(df, "train", where)) if a is not b else []
            if len(both):
                raise UserError(f"--task {a.id} --task {b.id}: {len(both)} test rows of {a.id} are training rows of "
                                f"{b.id} (first: {df['sample_id'].iloc[both[0]]}); seal them into separate "
                                "public datasets (one --task each)")
    return tests


def split_parts(rows: pd.DataFrame, fraction: float, seed: int) -> dict[str, list[str]]:
    """A seeded split of test ``rows`` into ``dev`` and ``final`` (``fraction`` of them),
    stratified by species: classes are taken in sorted order and each gets its share of the
    running total rounded, so the final part holds ``round(fraction * n)`` rows and every
    class its proportion (within one row)."""
    rng = np.random.default_rng([int(seed), 0x5EA1])
    final: list[str] = []
    done = 0
    species = rows["species"].to_numpy()
    ids = rows["sample_id"].to_numpy()
    for label in sorted(set(species.tolist())):
        members = ids[species == label]
        members = members[rng.permutation(len(members))]
        take = int(np.floor((done + len(members)) * fraction + 0.5) - np.floor(done * fraction + 0.5))
        final.extend(members[:take].tolist())
        done += len(members)
    chosen = set(final)
    parts = {"dev": [s for s in ids.tolist() if s not in chosen], "final": [s for s in ids.tolist() if s in chosen]}
    if not parts["dev"] or not parts["final"]:
        raise UserError(f"--private-fraction {fraction:g}: leaves the {'dev' if not parts['dev'] else 'final'} part "
                        f"of {len(ids)} test rows empty; choose a fraction nearer 0.5")
    return parts


def _link_or_copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)  # photos are large: a hard link where the file system allows one
    except OSError:
        shutil.copy2(src, dst)


def _copy_files(folder: Path, dest: Path, paths) -> None:
    for rel in dict.fromkeys(p for p in paths if p):
        src = folder / rel
        if not src.is_file():
            raise UserError(f"{src}: missing (listed in {folder}'s manifest); "
                            f"run `minbench data check --data {folder}`")
        _link_or_copy(src, dest / rel)


def _check_outputs(folder: Path, outs: dict[str, Path]) -> None:
    for flag, out in outs.items():
        if out.exists():
            raise UserError(f"{flag} {out}: already exists; choose a new folder")
        if out.resolve().is_relative_to(folder.resolve()):
            raise UserError(f"{flag} {out}: inside the dataset {folder}; choose a folder outside it")
    if outs["--out"].resolve() == outs["--truth"].resolve():
        raise UserError("--out and --truth: the same folder; the truth must lie apart from the public dataset")


def seal_dataset(data_dir: str | Path | None, public_out: str | Path, truth_out: str | Path,
                 task_ids: Sequence[str], *, private_fraction: float = 0.0, seed: int = 0) -> tuple[DatasetInfo, Path]:
    """Write the public dataset into ``public_out`` and the truth bundle into ``truth_out``
    for ``task_ids`` (see the module docstring). ``private_fraction`` > 0 records a seeded,
    stratified dev/final split of each task's test rows in the bundle. Both folders appear
    whole or not at all. Returns the public dataset's ``DatasetInfo`` and the bundle folder."""
    from minbench.data.locate import resolve_dataset
    from minbench.data.manifest import write_dataset

    folder = resolve_dataset(data_dir)
    info, df = read_info(folder), read_manifest(folder)
    if info.public is not None:
        raise UserError(f"--data {folder}: already a public dataset (sealed from {info.public.get('of', {})}); "
                        "seal the dataset that holds the truth")
    if not 0.0 <= private_fraction < 1.0:
        raise UserError(f"--private-fraction {private_fraction:g}: must be at least 0 and below 1")
    public_out, truth_out = Path(public_out), Path(truth_out)
    _check_outputs(folder, {"--out": public_out, "--truth": truth_out})
    cards = _cards(task_ids)
    for card in cards:
        info.require_task(card.id, folder)
    tests = _refuse_conflicts(cards, df, str(folder))
    public = df
    for card in cards:
        public = blank_rows(public, tests[card.id], card.truth_columns(df.columns, "test"))
    sealed = np.unique(np.concatenate([tests[c.id] for c in cards]))
    truth_rows = df.iloc[sealed].reset_index(drop=True)
    identity = {k: getattr(info, k) for k in IDENTITY_KEYS}
    record = {"of": identity, "tasks": [c.id for c in cards],
              "candidates": {c.id: list(c.classes(df)) for c in cards if c.public_candidates},
              "truth": "held apart (minbench score --truth TRUTH)"}
    others = {t: f"a public dataset sealed for {', '.join(record['tasks'])}; seal the original for {t}"
              for t in all_cards() if t not in record["tasks"]}
    extra = {k: v for k, v in info.extra.items() if k not in (PUBLIC_KEY, "unavailable_tasks")}
    extra.update({"unavailable_tasks": {**info.unavailable_tasks, **others}, PUBLIC_KEY: record})
    tasks = {}
    for card in cards:
        rows = df.iloc[tests[card.id]]
        tasks[card.id] = {"test_ids": rows["sample_id"].tolist()}
        if private_fraction > 0:
            tasks[card.id].update(parts=split_parts(rows, private_fraction, seed),
                                  split={"private_fraction": private_fraction, "seed": seed,
                                         "method": "stratified by species, seeded"})
    with storage_errors(public_out.parent, "the public dataset"), atomic_path(public_out) as tmp_public, \
            atomic_path(truth_out) as tmp_truth:
        keep = np.setdiff1d(np.arange(len(df)), sealed)
        _copy_files(folder, tmp_public, df["image_path"].tolist())
        _copy_files(folder, tmp_public, df["mask_path"].iloc[keep].tolist())
        # after the files: the dataset's fingerprints read the masks it holds
        public_info = write_dataset(tmp_public, public, name=info.name, version=info.version, source=info.source,
                                    extra=extra)
        _copy_files(folder, tmp_truth, truth_rows["mask_path"].tolist())
        with atomic_path(tmp_truth / TRUTH_ROWS) as tmp:
            truth_rows.to_parquet(tmp, index=False)
        write_json_atomic(tmp_truth / TRUTH_JSON, {"schema": TRUTH_SCHEMA, "dataset": identity,
                                                   "public_fingerprint": public_info.fingerprint, "tasks": tasks})
    return public_info, truth_out


def read_truth(folder: str | Path, what: str = "--truth") -> TruthBundle:
    """Read a truth bundle folder; a one-line ``UserError`` names what is wrong."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"{what} {folder}: not a truth bundle folder (minbench data seal --truth DIR writes one)")
    path = folder / TRUTH_JSON
    raw = read_json(path, "truth bundle", missing=None)
    if raw is None:
        raise UserError(f"{what} {folder}: no {TRUTH_JSON} (not a truth bundle)")
    if not isinstance(raw, dict) or raw.get("schema") != TRUTH_SCHEMA or not isinstance(raw.get("tasks"), dict) \
            or not isinstance(raw.get("dataset"), dict):
        raise UserError(f"{path}: not a {TRUTH_SCHEMA} truth bundle")
    cards = all_cards()
    for task_id in raw["tasks"]:
        if task_id not in cards:
            raise UserError(f"{path}: task {task_id!r} is not a task (known: {', '.join(cards)})")
    try:
        rows = normalise(pd.read_parquet(folder / TRUTH_ROWS))
    except Exception as exc:  # pyarrow raises many types for a missing or damaged file
        raise UserError(f"{folder / TRUTH_ROWS}: not readable ({type(exc).__name__}: {exc})") from None
    return TruthBundle(folder=folder, dataset=dict(raw["dataset"]), tasks=dict(raw["tasks"]), rows=rows,
                       public_fingerprint=str(raw.get("public_fingerprint")))


def restore(public_dir: Path, public_info: DatasetInfo, public: pd.DataFrame, bundle: TruthBundle,
            task_id: str) -> tuple[DatasetInfo, pd.DataFrame]:
    """The original dataset's ``DatasetInfo`` and manifest: ``public`` (the public dataset at
    ``public_dir``) with the bundle's rows put back, checked against the bundle's identity
    (the fingerprint of the restored manifest must be the original's)."""
    where = f"--truth {bundle.folder}"
    record = public_info.public or {}
    of = record.get("of") or {}
    if (of.get("fingerprint") != bundle.dataset.get("fingerprint")
            or public_info.fingerprint != bundle.public_fingerprint):
        raise UserError(f"{where}: the truth of {bundle.dataset.get('name')} {bundle.dataset.get('fingerprint')} "
                        f"(public {bundle.public_fingerprint}), not of --data {public_dir} (public "
                        f"{public_info.fingerprint}, sealed from {of.get('fingerprint')})")
    if task_id not in bundle.tasks:
        raise UserError(f"{where}: holds no truth for task {task_id} (it holds: {', '.join(bundle.tasks)})")
    pos = pd.Index(public["sample_id"]).get_indexer(bundle.rows["sample_id"])
    if (pos < 0).any():
        raise UserError(f"{where}: sample {bundle.rows['sample_id'].iloc[int(np.argmax(pos < 0))]!r} is not in "
                        f"--data {public_dir}")
    full = public.copy()
    for column in full.columns:
        values = full[column].to_numpy(copy=True)
        values[pos] = bundle.rows[column].to_numpy()
        full[column] = values
    full = normalise(full)
    if fingerprint(full) != bundle.dataset.get("fingerprint"):
        raise UserError(f"{where}: with --data {public_dir} does not restore {bundle.dataset.get('name')} "
                        f"{bundle.dataset.get('fingerprint')} (a changed public dataset or truth bundle)")
    extra = {k: v for k, v in public_info.extra.items()
             if k not in (PUBLIC_KEY, "unavailable_tasks", TRUTH_FINGERPRINT_KEY)}
    if bundle.dataset.get("truth_fingerprint"):  # the original's: its scores go on the original's boards
        extra[TRUTH_FINGERPRINT_KEY] = bundle.dataset["truth_fingerprint"]
    info = DatasetInfo(name=str(bundle.dataset["name"]), version=str(bundle.dataset["version"]),
                       source=str(bundle.dataset["source"]), fingerprint=str(bundle.dataset["fingerprint"]),
                       n_samples=len(full), extra=extra)
    return info, full


def candidate_names(dataset_dir: Path, card: TaskCard, manifest: pd.DataFrame) -> tuple[str, ...]:
    """A zero-shot task's candidate names, which its card makes public: those a public
    dataset records for the task (its test rows are sealed), else the card's classes."""
    named = ((read_info(dataset_dir).public or {}).get("candidates") or {}).get(card.id)
    return tuple(named) if named else tuple(card.classes(manifest, where=str(dataset_dir)))
