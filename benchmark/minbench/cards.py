"""Task cards: the declarative YAML that says what each benchmark task is.

A card names the manifest split, the metrics (with the headline) and the submission
format. The trainers, the scorer and the CLI all read metrics from here, so a task's
metrics are named in exactly one place (lm-evaluation-harness's habit).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from minbench.errors import UserError
from minbench.paths import shipped_dir

KINDS = ("classification", "zeroshot", "segmentation", "size")
SUBMISSION_FORMATS = ("ranked_csv", "mask_pngs", "size_csv")
METRIC_KINDS = ("topk_accuracy", "macro_recall", "mean_iou", "dice", "pixel_accuracy",
                "mae", "rmse", "mape", "r2", "coverage")


@dataclass(frozen=True)
class MetricSpec:
    name: str
    kind: str
    k: int | None = None
    higher_is_better: bool = True
    unit: str = ""
    cluster: str | None = None  # "class": samples cluster by class (intervals resample classes first)


@dataclass(frozen=True)
class TaskCard:
    id: str
    title: str
    kind: str
    description: str
    split_column: str
    train_value: Any
    test_value: Any
    metrics: tuple[MetricSpec, ...]
    headline: str
    submission_format: str
    max_ranks: int | None
    abstain: bool
    path: Path

    @property
    def headline_metric(self) -> MetricSpec:
        return next(m for m in self.metrics if m.name == self.headline)


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
    return TaskCard(
        id=str(need(raw, "id", "")), title=str(raw.get("title", "")), kind=kind,
        description=str(raw.get("description", "")).strip(),
        split_column=str(need(split, "column", "split.")),
        train_value=split.get("train"), test_value=need(split, "test", "split."),
        metrics=tuple(specs), headline=headline, submission_format=fmt,
        max_ranks=sub.get("max_ranks"), abstain=bool(sub.get("abstain", False)), path=path,
    )


def _cluster(m: dict, metrics_raw: dict, path: Path, i: int) -> str | None:
    value = m.get("cluster", metrics_raw.get("cluster"))
    if value not in (None, "class"):
        raise UserError(f"{path}: metrics.list[{i}] cluster {value!r}: only 'class' (or none)")
    return value


def load_card(path: str | Path) -> TaskCard:
    """Read and validate one task card file."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{path}: task card not found") from None
    except yaml.YAMLError as exc:
        raise UserError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    card = _parse(raw, path)
    if card.id != path.stem:
        raise UserError(f"{path}: id {card.id!r} does not match the file name {path.stem!r}")
    return card


@lru_cache(maxsize=None)
def all_cards() -> dict[str, TaskCard]:
    """Every shipped task card, by id."""
    folder = shipped_dir("tasks")
    return {c.id: c for c in (load_card(p) for p in sorted(folder.glob("*.yaml")))}


def task_ids() -> list[str]:
    return list(all_cards())


def get_card(task_id: str) -> TaskCard:
    """The card of ``task_id``; a ``UserError`` lists the known ids otherwise."""
    cards = all_cards()
    if task_id not in cards:
        raise UserError(f"--task {task_id!r} is not a task (known: {', '.join(cards)})")
    return cards[task_id]
