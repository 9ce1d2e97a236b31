"""``minbench export codabench``: a Codabench competition bundle (a zip) for minbench tasks.

The bundle follows Codabench's v2 competition YAML (docs.codabench.org, "Competition
Bundle Structure" and "Yaml Structure"; the fields its ``V2Unpacker`` reads): ``version: 2``,
``title``, ``image``, ``terms``, ``pages``, ``tasks`` (``index``, ``name``, ``description``,
``scoring_program``, ``reference_data``), ``solutions`` (``index``, ``tasks``, ``path``),
``phases`` (``index``, ``name``, ``start``, ``end``, ``max_submissions_per_day``,
``max_submissions``, ``tasks``, ``starting_kit``) and ``leaderboards`` (``title``, ``key``,
``columns`` of ``title``, ``key``, ``index``, ``sorting``, ``precision``). Folders in the
zip are zipped by the platform; the scoring program's ``metadata.yaml`` command uses the
platform's ``$program``/``$input``/``$output`` (``/app/input`` holds ``ref/`` and ``res/``).

Codabench binds every phase to the FIRST leaderboard of the YAML
(``BaseUnpacker._save_competition``) and stores only the scores of that board's columns,
so a leaderboard per task would leave all but one empty. The bundle has one leaderboard
with a group of columns per minbench task (the task's card metrics, headline first), the
first ``--task`` first: its headline is the primary column (index 0) the board ranks by.
A multi-task phase runs every task's scoring program on the submission and gathers the
tasks' scores on one row.

Each minbench task is sealed on its own (``data/public.py``: a task's test row may be
another's training row) with a seeded, stratified dev/final split, and becomes two
Codabench tasks: ``<task> (dev)`` scored on the dev part (the development phase) and
``<task> (final)`` on the final part (the final phase), both with the same scoring program
(``export/program.py`` with the minbench scoring code it needs, copied) and the reference
data ``minbench-ref.json`` + the public manifest + the truth bundle. The columns carry
each metric's sorting direction (``desc`` when higher is better). The starting kit holds
what the reference baselines that need no training submit, written by
minbench's writers from the public data alone (``starting_kit``).
"""

from __future__ import annotations

import datetime as _dt
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import Sequence

import numpy as np

from minbench.cards import TaskCard, get_card
from minbench.errors import UserError
from minbench.io import atomic_path, write_json_atomic, write_text_atomic
from minbench.paths import PACKAGE_DIR, shipped_dir

#: the minbench modules the scoring program needs (the scorer, the data layer it reads the
#: manifest and truth bundle with, and what they import); nothing that imports torch
CARRIED = ("__init__.py", "_version.py", "errors.py", "paths.py", "io.py", "registry.py", "console.py", "dist.py",
           "cards.py", "data", "scoring", "export")
DEFAULT_DAILY_LIMIT = 5
DEFAULT_PRIVATE_FRACTION = 0.5
DEV_DAYS, FINAL_DAYS = 90, 14
#: the platform's image the scoring program runs in: it needs Python 3 with NumPy, pandas,
#: PyArrow, PyYAML and Pillow (``--docker-image`` names another)
DOCKER_IMAGE = "codalab/codalab-legacy:py39"
#: Codabench's limit on a leaderboard column's title and key (``leaderboards.models.Column``)
COLUMN_CHARS = 36
SCORE_PY = '''"""Codabench scoring program of minbench: its own scorer, carried in ./minbench."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from minbench.export.program import main  # noqa: E402

sys.exit(main())
'''


def _copy_scorer(dest: Path) -> None:
    """``dest``: ``score.py``, ``metadata.yaml`` and the carried ``minbench`` package with its task cards."""
    pkg = dest / "minbench"
    for name in CARRIED:
        src = PACKAGE_DIR / name
        if src.is_dir():
            shutil.copytree(src, pkg / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "synth"))
        else:
            pkg.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, pkg / name)
    shutil.copytree(shipped_dir("tasks"), pkg / "_shipped" / "tasks")
    (dest / "score.py").write_text(SCORE_PY)
    (dest / "metadata.yaml").write_text("command: python3 $program/score.py $input $output\n")


def _reference(dest: Path, card: TaskCard, public: Path, truth: Path, part: str) -> None:
    shutil.copytree(truth, dest / "truth")
    (dest / "public").mkdir(parents=True)
    for name in ("manifest.parquet", "dataset.json"):
        shutil.copy2(public / name, dest / "public" / name)
    write_json_atomic(dest / "minbench-ref.json", {"task": card.id, "part": part})


def starting_kit(card: TaskCard, public: Path, dest: Path) -> str:
    """Write the no-training reference submission of ``card`` from the public dataset at
    ``public`` into ``dest`` (the card floors, as a file): the training prior (few-shot), the
    candidates in name order (zero-shot), every pixel mineral (segmentation), the median
    size of the rows outside the size test split (size). Returns a line on what it is."""
    from minbench.data.manifest import read_info, read_manifest
    from minbench.scoring.floors import median_size, train_prior
    from minbench.scoring.formats import write_mask_folder, write_ranked_csv, write_size_csv

    df, info = read_manifest(public), read_info(public)
    rows = card.rows(df, "test")
    ids = rows["sample_id"].tolist()
    if card.kind == "classification":
        order = train_prior(card, df)
        write_ranked_csv(dest / f"{card.id}.csv", ids, [order] * len(ids))
        return f"{card.id}.csv: train prior (every row ranks the {len(order)} most frequent training classes)"
    if card.kind == "zeroshot":
        names = sorted(info.public["candidates"][card.id])[: card.max_ranks]
        write_ranked_csv(dest / f"{card.id}.csv", ids, [names] * len(ids))
        return f"{card.id}.csv: the candidates in name order (chance level)"
    if card.kind == "segmentation":
        write_mask_folder(dest / card.id, ((r.sample_id, np.ones((int(r.height), int(r.width)), bool))
                                           for r in rows.itertuples(index=False)))
        return f"{card.id}/: every pixel mineral"
    median, _ = median_size(card, df)
    write_size_csv(dest / f"{card.id}.csv", ids, [median] * len(ids))
    return f"{card.id}.csv: the median size of the rows outside the test split ({median:.3g} cm) for every row"


def leaderboard(cards: list[TaskCard]) -> dict:
    """The one leaderboard: each task's card metrics as a group of columns (headline first),
    the first task first, so its headline is the primary column (index 0) Codabench ranks by."""
    from minbench.export.program import column_key

    columns = []
    for card in cards:
        for m in [card.headline_metric] + [m for m in card.metrics if m.name != card.headline]:
            title, key = f"{card.id} {m.name}" + (f" ({m.unit})" if m.unit else ""), column_key(card.id, m.name)
            if len(title) > COLUMN_CHARS or len(key) > COLUMN_CHARS:
                raise UserError(f"{card.path}: metric {m.name!r} makes a Codabench column name longer than "
                                f"{COLUMN_CHARS} characters ({key})")
            columns.append({"title": title, "key": key, "index": len(columns),
                            "sorting": "desc" if m.higher_is_better else "asc", "precision": 4})
    return {"title": "Results", "key": "minbench", "columns": columns}


def competition(cards: list[TaskCard], kits: dict[str, str], *, daily: int, start: _dt.date,
                title: str | None = None, docker_image: str = DOCKER_IMAGE) -> dict:
    """The ``competition.yaml`` mapping for ``cards`` (dev task 2i, final task 2i+1)."""
    tasks, dev, final = [], [], []
    for i, card in enumerate(cards):
        for j, part in enumerate(("dev", "final")):
            tasks.append({"index": 2 * i + j, "name": f"{card.id} ({part})",
                          "description": f"{card.title}: the {part} part of the hidden test set",
                          "scoring_program": "scoring_program", "reference_data": f"reference_data/{card.id}-{part}"})
            (dev if part == "dev" else final).append(2 * i + j)
    end_dev = start + _dt.timedelta(days=DEV_DAYS)
    ids = ", ".join(c.id for c in cards)
    return {
        "version": 2, "title": title or f"minbench: {ids}",
        "description": f"Mineral recognition from photographs (minbench tasks {ids}), with hidden test labels.",
        "image": "logo.png", "registration_auto_approve": True, "docker_image": docker_image,
        "terms": "terms.md",
        "pages": [{"title": "Overview", "file": "overview.md"}, {"title": "Evaluation", "file": "evaluation.md"},
                  {"title": "Terms", "file": "terms.md"}],
        "tasks": tasks,
        "solutions": [{"index": 0, "tasks": dev + final, "path": "starting_kit",
                       "name": "reference baselines (no training)", "description": "; ".join(kits.values())}],
        "phases": [
            {"index": 0, "name": "Development", "description": "Scored on the dev part of the test set; shown at once.",
             "start": start.isoformat(), "end": end_dev.isoformat(), "max_submissions_per_day": daily,
             "max_submissions": daily * DEV_DAYS, "tasks": dev, "starting_kit": "starting_kit"},
            {"index": 1, "name": "Final", "description": "Scored on the final (private) part of the test set.",
             "start": end_dev.isoformat(), "end": (end_dev + _dt.timedelta(days=FINAL_DAYS)).isoformat(),
             "max_submissions_per_day": daily, "max_submissions": daily * FINAL_DAYS, "tasks": final,
             "starting_kit": "starting_kit"}],
        "leaderboards": [leaderboard(cards)],
    }


def _pages(dest: Path, cards: list[TaskCard], kits: dict[str, str], fraction: float, seed: int, info) -> None:
    from minbench.export.program import column_key

    lines = [f"# {', '.join(c.id for c in cards)}", "",
             f"Dataset: {info.name} {info.version} ({info.fingerprint}); its test labels are hidden. "
             "Get the public dataset (photos, training labels) from the organisers: "
             "`minbench data seal --task T --data DIR --out PUBLIC --truth TRUTH` writes it.", ""]
    for c in cards:
        lines += [f"## {c.id}: {c.title}", "", c.description, "",
                  f"Submit `{c.id}/` or `{c.id}.zip` of `<sample_id>.png` masks, optionally with each image's "
                  "score map as `maps/<sample_id>.png` (grey, 8 or 16 bits)" if c.submission_format == "mask_pngs"
                  else f"Submit `{c.id}.csv` ({c.submission_format}, as `minbench score` reads it)", ""]
    lines += ["## Starting kit", "", *[f"- {k}" for k in kits.values()], ""]
    write_text_atomic(dest / "overview.md", "\n".join(lines))
    ev = ["# Evaluation", "", "Scored by minbench's own scorer (the scoring program carries it): the numbers "
          "`minbench score` gives on the same files. A malformed submission is refused with the line "
          "`minbench score` prints.", "",
          f"The test set of each task is split, stratified by species with seed {seed}, into a dev part "
          f"({1 - fraction:.0%}, the Development phase) and a final part ({fraction:.0%}, the Final phase).", ""]
    for c in cards:
        ev += [f"- {c.id}: " + ", ".join(f"`{column_key(c.id, m.name)}` ({'higher' if m.higher_is_better else 'lower'}"
                                         " is better)" for m in c.metrics)]
    write_text_atomic(dest / "evaluation.md", "\n".join(ev) + "\n")
    write_text_atomic(dest / "terms.md", "# Terms\n\nSubmit predictions made from the public data only; the test "
                                         "labels, masks and sizes are not to be sought or used.\n")


def _logo(path: Path) -> None:
    from PIL import Image

    Image.new("RGB", (64, 64), (70, 110, 90)).save(path)


def export_codabench(task_ids: Sequence[str], data_dir, out: str | Path, *, daily: int = DEFAULT_DAILY_LIMIT,
                     private_fraction: float = DEFAULT_PRIVATE_FRACTION, seed: int = 0,
                     start: _dt.date | None = None, docker_image: str = DOCKER_IMAGE) -> Path:
    """Write the competition bundle zip ``out`` for ``task_ids`` on the dataset ``data_dir``
    (see the module docstring); the zip appears whole or not at all."""
    import yaml

    from minbench.data.locate import resolve_dataset
    from minbench.data.manifest import read_info
    from minbench.data.public import seal_dataset

    if not task_ids:
        raise UserError("--task: name at least one task")
    if daily < 1:
        raise UserError(f"--daily-limit {daily}: must be at least 1")
    if not 0 < private_fraction < 1:
        raise UserError(f"--private-fraction {private_fraction:g}: must be above 0 and below 1")
    out = Path(out)
    if out.suffix.lower() != ".zip":
        raise UserError(f"--out {out}: a competition bundle is a .zip")
    cards = [get_card(t) for t in dict.fromkeys(task_ids)]
    folder = resolve_dataset(data_dir)
    info = read_info(folder)
    with tempfile.TemporaryDirectory(prefix="minbench-codabench-") as tmp:
        tmp = Path(tmp)
        bundle, kits = tmp / "bundle", {}
        for card in cards:
            public, truth = tmp / "sealed" / card.id / "public", tmp / "sealed" / card.id / "truth"
            seal_dataset(folder, public, truth, [card.id], private_fraction=private_fraction, seed=seed)
            for part in ("dev", "final"):
                _reference(bundle / "reference_data" / f"{card.id}-{part}", card, public, truth, part)
            kits[card.id] = starting_kit(card, public, bundle / "starting_kit")
        _copy_scorer(bundle / "scoring_program")
        _pages(bundle, cards, kits, private_fraction, seed, info)
        _logo(bundle / "logo.png")
        spec = competition(cards, kits, daily=daily, start=start or _dt.date.today(), docker_image=docker_image)
        (bundle / "competition.yaml").write_text(yaml.safe_dump(spec, sort_keys=False, allow_unicode=True))
        with atomic_path(out) as tmp_zip:
            with zipfile.ZipFile(tmp_zip, "w", zipfile.ZIP_DEFLATED) as zf:
                for path in sorted(bundle.rglob("*")):
                    if path.is_file():
                        zf.write(path, path.relative_to(bundle).as_posix())
    return out
