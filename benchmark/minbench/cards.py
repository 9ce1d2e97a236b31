"""Task cards: the declarative YAML that says what each benchmark task is.

A card names the manifest split, the metrics (with the headline), the submission format
and the protocol's ``version``. ``TaskCard`` is the one owner of what follows from them:
which manifest rows are a task's train and test split (``rows``/``positions``), the
species a submission may name (``classes``), the metric a training run monitors
(``monitor``, ``monitor_mode``), which metrics are fractions (``is_fraction``) and how
many ranks a submission may give (``max_ranks``). The data module, the scorer, the
pipelines, ``data show``, the leaderboard and the CLI ask the card; nothing else spells
these (lm-evaluation-harness's habit). The ``version`` is recorded in every score and
leaderboard entry, so a changed protocol never mixes with old results.

Splits, by the card's ``kind`` (``split.column`` is the manifest column):

- ``classification``: train = rows with ``column == split.train``, test = rows with
  ``column == split.test``;
- ``zeroshot``: test = rows with ``column == split.test``; train = rows whose species is
  NOT among the test rows' species (the disjoint classes a zero-shot method may learn on);
- ``segmentation``, ``size``: test only (``column == split.test``); train is empty.

A test-only card may carve a **validation part** out of its test rows (``split.validation:
{share: 0.2, seed: 0, stratify: species}``, ``ValidationSpec``): per species (sorted), the
rows ranked by numpy's seeded ``Generator`` and the first ``round(share * n)`` of the running
total taken (``validation_positions``); ``positions(..., "test")`` is the rest, the part the
scorer scores. A public dataset sealed for the task blanks the species of exactly its test
rows, so there the validation part is read back as the rows that kept theirs.

What a method may read (the sealed protocol), by the card's ``inputs``: of every row the
photo and ``ALWAYS_PUBLIC`` (its id, file, pixel size, origin) and which task sets it belongs
to (every card's split column); of a training row also ``inputs.train`` (its labels and
texts); of a test row also ``inputs.test`` (what the release gives beside a photo that is not
the answer: for ``size`` the release's detector boxes); of a row in neither split (a
calibration row, ``calibration_positions``: for ``size`` every row outside its test split)
also ``inputs.calibration``; of a validation row ``inputs.validation`` (for ``segmentation``
its mask: a method may choose a few scalars on it) (for ``size`` the recorded ``size_cm``: calibration data).
Every other column of a test row (species, description, collection, variety, masks, boxes,
sizes, scales, and any column a later manifest adds) is truth, read by the scorer only
(``public_columns``, ``truth_columns``). A zero-shot card's ``inputs.candidates: true``
makes its candidate names public: a zero-shot method must know which names it chooses
among (``classes``), never which photo is which.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from minbench.errors import UserError
from minbench.io import read_yaml
from minbench.paths import shipped_dir

KINDS = ("classification", "zeroshot", "segmentation", "size")
SUBMISSION_FORMATS = ("ranked_csv", "mask_pngs", "size_csv")
METRIC_KINDS = ("topk_accuracy", "macro_recall", "mean_iou", "dice", "pixel_accuracy", "pxap", "mean_ap",
                "mae", "rmse", "mape", "r2", "coverage")
#: metric kinds whose values are fractions in [0, 1] (shown as %, refused outside [0, 1])
FRACTION_KINDS = ("topk_accuracy", "macro_recall", "mean_iou", "dice", "pixel_accuracy", "pxap", "mean_ap",
                  "coverage")
#: ranks a ranked submission may give when its card does not say
DEFAULT_MAX_RANKS = 10
#: kinds whose tasks have a train split (the others are test-only)
TRAINABLE_KINDS = ("classification", "zeroshot")
SPLITS = ("train", "validation", "test")
#: what a row is to a task, for what a method may read of it: a train, validation or test
#: row, or a row in none of them (``calibration``)
ROW_ROLES = (*SPLITS, "calibration")
#: columns of every row a method may read, whatever the task: the photo's id, file, pixel
#: size and origin (the split membership columns of every card are public too)
ALWAYS_PUBLIC = ("sample_id", "image_path", "width", "height", "source")


@dataclass(frozen=True)
class MetricSpec:
    name: str
    kind: str
    k: int | None = None
    higher_is_better: bool = True
    unit: str = ""
    cluster: str | None = None  # "class": samples cluster by class (intervals resample classes first)


def is_fraction_kind(kind: str | None) -> bool:
    """Whether values of a metric ``kind`` are fractions in [0, 1]."""
    return kind in FRACTION_KINDS


def is_fraction_name(name: str) -> bool:
    """The one fallback for a metric of no known kind (published numbers of another
    dataset): a fraction when its name says so (``top5``, ``*accuracy``, ``*recall``,
    ``*iou``, ``*dice``, ``*coverage``)."""
    return bool(re.fullmatch(r"top\d+|.*(accuracy|recall|iou|dice|coverage)", name))


@dataclass(frozen=True)
class ValidationSpec:
    """``split.validation``: the share of a test-only task's rows set apart for choosing a
    few scalars, the seed of its draw and the column it is stratified by."""

    share: float
    seed: int = 0
    stratify: str = "species"


@dataclass(frozen=True)
class TaskCard:
    id: str
    title: str
    kind: str
    description: str
    version: int
    split_column: str
    train_value: Any
    test_value: Any
    metrics: tuple[MetricSpec, ...]
    headline: str
    submission_format: str
    max_ranks: int
    abstain: bool
    path: Path
    #: manifest columns beyond ``ALWAYS_PUBLIC`` a method may read of a train / test row
    train_inputs: tuple[str, ...] = ()
    test_inputs: tuple[str, ...] = ()
    #: ... and, beside ``test_inputs``, of a row in neither split (calibration data)
    calibration_inputs: tuple[str, ...] = ()
    #: a zero-shot task's candidate names are public (``classes``); which photo is which is not
    public_candidates: bool = False
    #: ... and of a validation row (``validation``: the part of the test rows set apart)
    validation_inputs: tuple[str, ...] = ()
    validation: ValidationSpec | None = None

    @property
    def headline_metric(self) -> MetricSpec:
        return next(m for m in self.metrics if m.name == self.headline)

    def metric(self, name: str) -> MetricSpec | None:
        """The card's metric called ``name`` (None when the card has none)."""
        return next((m for m in self.metrics if m.name == name), None)

    # ---- training ------------------------------------------------------------------------
    @property
    def has_train(self) -> bool:
        """Whether the task has a train split (test-only tasks do not)."""
        return self.kind in TRAINABLE_KINDS

    @property
    def monitor(self) -> str:
        """The logged value a training run watches: the headline on the validation carve
        (``val/top1``); a test-only task's headline on its test rows (``test/mae``)."""
        return f"{'val' if self.has_train else 'test'}/{self.headline}"

    @property
    def monitor_mode(self) -> str:
        """``max`` or ``min``: the direction in which ``monitor`` improves."""
        return "max" if self.headline_metric.higher_is_better else "min"

    # ---- metrics -------------------------------------------------------------------------
    def is_fraction(self, metric_name: str) -> bool:
        """Whether the card's metric ``metric_name`` is a fraction in [0, 1] (by its kind;
        a name the card lacks falls back to ``is_fraction_name``)."""
        spec = self.metric(metric_name)
        return is_fraction_kind(spec.kind) if spec else is_fraction_name(metric_name)

    # ---- the sealed protocol ----------------------------------------------------------------
    def public_columns(self, split: str) -> tuple[str, ...]:
        """The manifest columns a method may read of this task's ``split`` rows (``train``,
        ``test`` or ``calibration``: a row in neither split): ``ALWAYS_PUBLIC``, every card's
        split column, and the card's ``inputs``."""
        if split not in ROW_ROLES:
            raise ValueError(f"split {split!r} is not one of {', '.join(ROW_ROLES)}")
        membership = tuple(dict.fromkeys(c.split_column for c in all_cards().values()))
        extra = {"train": self.train_inputs, "test": self.test_inputs,
                 "validation": self.test_inputs + self.validation_inputs,
                 "calibration": self.test_inputs + self.calibration_inputs}[split]
        return tuple(dict.fromkeys(ALWAYS_PUBLIC + membership + extra))

    def truth_columns(self, columns, split: str = "test") -> list[str]:
        """Of ``columns`` (a manifest's), those a method may not read of ``split`` rows: every
        column the card does not name public, so a column a later manifest adds is truth."""
        public = set(self.public_columns(split))
        return [c for c in columns if c not in public]

    # ---- splits --------------------------------------------------------------------------
    def _split_column(self, manifest, where: str):
        if self.split_column not in manifest.columns:
            raise UserError(f"{where}: has no column {self.split_column!r} (split of task {self.id})")
        return manifest[self.split_column]

    def positions(self, manifest, split: str, where: str = "manifest", *, allow_empty: bool = False) -> np.ndarray:
        """0-based positions of the ``split`` (``train``, ``validation`` or ``test``) rows of ``manifest``,
        in manifest order (the rule of each kind: the module docstring). The one rule of
        split membership: the data module, the scorer, ``data check``, ``data prepare`` and
        the generator's statistics all ask it.

        A ``UserError`` (prefixed with ``where``) when the manifest lacks the split column
        or, unless ``allow_empty`` (counting what a dataset holds), has no test rows.
        """
        if split not in SPLITS:
            raise ValueError(f"split {split!r} is not one of {', '.join(SPLITS)}")
        column = self._split_column(manifest, where)
        is_test = (column == self.test_value).to_numpy()
        if split != "train":
            candidates = np.flatnonzero(is_test)
            validation = self._validation(manifest, candidates)
            if split == "validation":
                return validation
            found = np.setdiff1d(candidates, validation)
            if not len(found) and not allow_empty:
                raise UserError(f"{where}: no test rows for task {self.id} (column {self.split_column} "
                                f"== {self.test_value!r})")
            return found
        if self.kind == "classification":
            return np.flatnonzero((column == self.train_value).to_numpy())
        if self.kind == "zeroshot":
            species = manifest["species"].to_numpy()
            return np.flatnonzero(~np.isin(species, np.unique(species[is_test])))
        return np.array([], np.int64)

    def _validation(self, manifest, candidates: np.ndarray) -> np.ndarray:
        """The validation part of the rows at ``candidates`` (``split.validation``'s rule)."""
        spec = self.validation
        if spec is None or not len(candidates):
            return np.array([], np.int64)
        if spec.stratify not in manifest.columns:
            raise UserError(f"{self.path}: split.validation.stratify: the manifest has no column {spec.stratify!r}")
        strata = manifest[spec.stratify].to_numpy()[candidates].astype(str)
        kept = strata != ""
        if not kept.all():  # a public dataset: its seal blanked the test rows, kept the validation rows
            return candidates[kept]
        keys = np.random.default_rng([spec.seed, 0x5E6]).random(len(candidates))
        chosen, done = [], 0
        for label in sorted(set(strata.tolist())):
            members = candidates[strata == label]
            members = members[np.argsort(keys[strata == label], kind="stable")]
            take = int(np.floor((done + len(members)) * spec.share + 0.5) - np.floor(done * spec.share + 0.5))
            chosen.extend(members[:take].tolist())
            done += len(members)
        return np.sort(np.asarray(chosen, np.int64))

    def calibration_positions(self, manifest, where: str = "manifest") -> np.ndarray:
        """0-based positions of the rows in none of the train, validation and test splits (for
        a test-only task, every row outside its test split), in manifest order: the rows whose
        ``inputs.calibration`` columns a method may read (``scoring.floors.median_size``
        takes its median over them too)."""
        taken = np.zeros(len(manifest), bool)
        for split in SPLITS:
            taken[self.positions(manifest, split, where, allow_empty=True)] = True
        return np.flatnonzero(~taken)

    def rows(self, manifest, split: str, where: str = "manifest", *, allow_empty: bool = False):
        """The ``split`` rows of ``manifest`` (a DataFrame keeping the manifest's index), in
        manifest order; errors as ``positions``."""
        return manifest.iloc[self.positions(manifest, split, where, allow_empty=allow_empty)]

    def classes(self, manifest, where: str = "manifest"):
        """The species a submission may name, sorted (a ``pandas.Index``): those of the
        task's train and test rows; a zero-shot task's: its test rows' (the candidates)."""
        import pandas as pd

        values = [v for v in (self.train_value, self.test_value) if v is not None]
        species = manifest.loc[self._split_column(manifest, where).isin(values), "species"]
        return pd.Index(sorted(species.unique()))


def _parse(raw: Any, path: Path) -> TaskCard:
    def need(obj: dict, key: str, where: str):
        if not isinstance(obj, dict) or key not in obj:
            raise UserError(f"{path}: task card lacks '{where}{key}'")
        return obj[key]

    if not isinstance(raw, dict):
        raise UserError(f"{path}: task card is not a YAML mapping")
    kind = need(raw, "kind", "")
    if kind not in KINDS:
        raise UserError(f"{path}: kind {kind!r} is not one of {', '.join(KINDS)}")
    split = need(raw, "split", "")
    metrics_raw = need(raw, "metrics", "")
    specs = []
    for i, m in enumerate(need(metrics_raw, "list", "metrics.")):
        if not isinstance(m, dict) or "name" not in m or "kind" not in m:
            raise UserError(f"{path}: metrics.list[{i}] needs 'name' and 'kind'")
        if m["kind"] not in METRIC_KINDS:
            raise UserError(f"{path}: metrics.list[{i}] kind {m['kind']!r} is unknown (known: {', '.join(METRIC_KINDS)})")
        if m["kind"] == "topk_accuracy" and not isinstance(m.get("k"), int):
            raise UserError(f"{path}: metrics.list[{i}] topk_accuracy needs an integer k")
        specs.append(MetricSpec(name=m["name"], kind=m["kind"], k=m.get("k"),
                                higher_is_better=bool(m.get("higher_is_better", True)),
                                unit=str(m.get("unit", "")), cluster=_cluster(m, metrics_raw, path, i)))
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise UserError(f"{path}: metric names repeat: {names}")
    headline = need(metrics_raw, "headline", "metrics.")
    if headline not in names:
        raise UserError(f"{path}: headline metric {headline!r} is not among {names}")
    sub = need(raw, "submission", "")
    fmt = need(sub, "format", "submission.")
    if fmt not in SUBMISSION_FORMATS:
        raise UserError(f"{path}: submission.format {fmt!r} is not one of {', '.join(SUBMISSION_FORMATS)}")
    max_ranks = sub.get("max_ranks", DEFAULT_MAX_RANKS)
    if isinstance(max_ranks, bool) or not isinstance(max_ranks, int) or max_ranks < 1:
        raise UserError(f"{path}: submission.max_ranks {max_ranks!r} must be a positive integer")
    version = need(raw, "version", "")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise UserError(f"{path}: version {version!r} must be a positive integer (raise it when the protocol "
                        "changes)")
    inputs, public_candidates = _inputs(raw.get("inputs"), kind, path)
    return TaskCard(
        id=str(need(raw, "id", "")), title=str(raw.get("title", "")), kind=kind,
        description=str(raw.get("description", "")).strip(), version=version,
        split_column=str(need(split, "column", "split.")),
        train_value=split.get("train"), test_value=need(split, "test", "split."),
        metrics=tuple(specs), headline=headline, submission_format=fmt,
        max_ranks=max_ranks, abstain=bool(sub.get("abstain", False)), path=path,
        train_inputs=inputs["train"], test_inputs=inputs["test"], calibration_inputs=inputs["calibration"],
        public_candidates=public_candidates, validation_inputs=inputs["validation"],
        validation=_validation_spec(split.get("validation"), kind, path),
    )


def _validation_spec(raw: Any, kind: str, path: Path) -> ValidationSpec | None:
    """``split.validation``: ``{share, seed, stratify}`` of a test-only card, or none."""
    if raw is None:
        return None
    if kind in TRAINABLE_KINDS:
        raise UserError(f"{path}: split.validation: a {kind} task carves its validation rows from its train split")
    if not isinstance(raw, dict) or set(raw) - {"share", "seed", "stratify"}:
        raise UserError(f"{path}: split.validation must be a mapping of share, seed and stratify")
    share, seed = raw.get("share"), raw.get("seed", 0)
    if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 < share < 1:
        raise UserError(f"{path}: split.validation.share {share!r} must be a number above 0 and below 1")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise UserError(f"{path}: split.validation.seed {seed!r} must be a non-negative integer")
    return ValidationSpec(float(share), seed, str(raw.get("stratify", "species")))


def _inputs(raw: Any, kind: str, path: Path) -> tuple[dict[str, tuple[str, ...]], bool]:
    """The card's ``inputs``: ``train``/``test``/``calibration`` lists of manifest columns,
    ``candidates``."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise UserError(f"{path}: inputs must be a mapping (train: [...], test: [...])")
    unknown = [k for k in raw if k not in (*ROW_ROLES, "candidates")]
    if unknown:
        raise UserError(f"{path}: inputs.{unknown[0]}: unknown (known: {', '.join(ROW_ROLES)}, candidates)")
    out = {}
    for split in ROW_ROLES:
        cols = raw.get(split) or []
        if not isinstance(cols, list) or not all(isinstance(c, str) and c for c in cols):
            raise UserError(f"{path}: inputs.{split} must be a list of manifest column names")
        out[split] = tuple(cols)
    candidates = raw.get("candidates", False)
    if not isinstance(candidates, bool):
        raise UserError(f"{path}: inputs.candidates must be true or false")
    if candidates and kind != "zeroshot":
        raise UserError(f"{path}: inputs.candidates: only a zero-shot task names its candidates")
    return out, candidates


def _cluster(m: dict, metrics_raw: dict, path: Path, i: int) -> str | None:
    value = m.get("cluster", metrics_raw.get("cluster"))
    if value not in (None, "class"):
        raise UserError(f"{path}: metrics.list[{i}] cluster {value!r}: only 'class' (or none)")
    return value


def load_card(path: str | Path) -> TaskCard:
    """Read and validate one task card file."""
    path = Path(path)
    raw = read_yaml(path, "task card")
    card = _parse(raw, path)
    if card.id != path.stem:
        raise UserError(f"{path}: id {card.id!r} does not match the file name {path.stem!r}")
    return card


def _natural(text: str) -> list:
    """Sort key reading digit runs as numbers: fewshot-10 < fewshot-98 < fewshot-360."""
    return [(0, int(p), "") if p.isdigit() else (1, 0, p) for p in re.split(r"(\d+)", text)]


@lru_cache(maxsize=None)
def all_cards() -> dict[str, TaskCard]:
    """Every shipped task card, by id, in natural order of the ids."""
    folder = shipped_dir("tasks")
    return {c.id: c for c in (load_card(p) for p in sorted(folder.glob("*.yaml"), key=lambda p: _natural(p.stem)))}


def task_ids() -> list[str]:
    return list(all_cards())


def cards_of_kind(kind: str) -> list[TaskCard]:
    """The shipped cards of ``kind`` (one of ``KINDS``), in natural order of their ids."""
    if kind not in KINDS:
        raise ValueError(f"kind {kind!r} is not one of {', '.join(KINDS)}")
    return [card for card in all_cards().values() if card.kind == kind]


def get_card(task_id: str) -> TaskCard:
    """The card of ``task_id``; a ``UserError`` lists the known ids otherwise."""
    cards = all_cards()
    if task_id not in cards:
        raise UserError(f"--task {task_id!r} is not a task (known: {', '.join(cards)})")
    return cards[task_id]
