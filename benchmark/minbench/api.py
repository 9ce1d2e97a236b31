"""The Python API: a task, its shared data module, and the scorer of ``minbench score``.

For a researcher with their own training loop (WILDS's ``get_dataset`` / ``dataset.eval``
habit):

```python
import minbench

task = minbench.get_task("fewshot-10")
dm = task.datamodule(image_size=64, batch_size=32)   # the shared MineralDataModule
...                                                   # train anything on dm
result = task.score("predictions.csv")               # same result as `minbench score`
print(result.metrics[result.headline])
```

Everything here imports lazily: ``import minbench`` stays light, and listing, reading
cards and scoring import no deep-learning framework of their own.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Task:
    """One benchmark task: its card, its data module, its scorer."""

    card: Any  # minbench.cards.TaskCard

    @property
    def id(self) -> str:
        return self.card.id

    def dataset_dir(self, data: str | Path | None = None) -> Path:
        """The prepared dataset folder ``data``, else the embedded one (generated on first use)."""
        from minbench.data.locate import resolve_dataset

        return resolve_dataset(data)

    def datamodule(self, data: str | Path | None = None, image_size: int | None = 224, **kwargs: Any):
        """The shared ``MineralDataModule`` serving this task from ``data`` (a prepared
        dataset folder; None = the embedded one). Keyword arguments are the data module's
        (``batch_size``, ``num_workers``, ``val_fraction``, ``augment``, ``seed``, ...).

        Sealed (``minbench.data.seal``): its test rows and test batches hold only the card's
        public test columns (the photo and its id); their truth is the scorer's (``score``)."""
        from minbench.data.datamodule import MineralDataModule

        return MineralDataModule(self.dataset_dir(data), task=self.id, image_size=image_size, **kwargs)

    def test_frame(self, data: str | Path | None = None):
        """The rows of this task's test split a submission must cover, with only the columns
        a method may read of them (``card.public_columns("test")``: the sealed protocol)."""
        from minbench.data.seal import public_view
        from minbench.scoring.score import load_task_data

        return public_view(load_task_data(self.id, data).rows, self.card)

    def score(self, predictions: str | Path, data: str | Path | None = None, **kwargs: Any):
        """Score a submission (a ranked CSV, a size CSV or a folder/zip of PNG masks) with
        the scorer ``minbench score`` uses; returns its ``ScoreResult`` (``metrics``,
        ``ci``, ``headline``, ``n_samples``, ``dataset``, ``to_json()``). Keyword arguments
        go to ``minbench.scoring.score.score_submission`` (``n_resamples``, ``seed``)."""
        from minbench.scoring.score import score_submission

        return score_submission(self.id, Path(predictions), data, **kwargs)


def compare(task: str, a: str | Path, b: str | Path, data: str | Path | None = None, **kwargs: Any):
    """``minbench compare``: A - B in every card metric with a paired bootstrap interval
    and, for top-k accuracy, the exact McNemar test; ``a``/``b`` are leaderboard entry
    names or predictions files. Keyword arguments go to ``minbench.scoring.compare.compare``."""
    from minbench.scoring.compare import compare as _compare

    return _compare(task, str(a), str(b), data_dir=data, **kwargs)


def get_task(task_id: str) -> Task:
    """The task ``task_id`` (``list_tasks()`` names them); a ``UserError`` otherwise."""
    from minbench.cards import get_card

    return Task(get_card(task_id))


def list_tasks() -> list[str]:
    """Every task id."""
    from minbench.cards import task_ids

    return task_ids()


def list_recipes(task: str | None = None) -> list[str]:
    """Shipped baseline recipes (those that can run ``task`` when given)."""
    from minbench.listing import list_recipes as rows

    return [r["name"] for r in rows(task)]


def list_cams() -> list[str]:
    """CAM method names (``--cam``)."""
    from minbench.listing import list_cams as names

    return names()


def list_datasets() -> list[dict[str, Any]]:
    """The embedded sizes and the prepared datasets under ``$MINBENCH_HOME``."""
    from minbench.listing import list_datasets as rows

    return rows()


def load_leaderboard(task: str, dirs: list[str | Path] | None = None) -> list[dict[str, Any]]:
    """The leaderboards of ``task`` (one dict per dataset, schema in
    ``leaderboards/SCHEMA.md``), from ``dirs`` or the folders ``minbench leaderboard`` reads."""
    from minbench.cards import get_card
    from minbench.scoring.leaderboard import load_boards

    get_card(task)
    folders = [Path(d) for d in dirs] if dirs is not None else None
    return [board for _, board in load_boards(folders) if board.get("task") == task]
