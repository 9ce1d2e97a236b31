"""``SeedContext``: everything a task kind's seed function gets for one seed (see ``runner``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from minbench.cards import TaskCard
from minbench.pipelines.run_folder import RunFolder, jsonable


@dataclass
class SeedContext:
    """Everything a kind's ``run_seed`` needs for one seed."""

    card: TaskCard
    config: dict[str, Any]          # the resolved recipe (see config.yaml of the run)
    data_dir: Path
    seed: int
    dir: Path                       # this seed's folder
    folder: RunFolder
    resume: bool = False
    leaderboard: bool = True
    quiet: bool = False
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def recipe_name(self) -> str:
        return str(self.config.get("name", "run"))

    def score(self, predictions: Path, *, name: str | None = None, method: str | None = None,
              resolved: dict | None = None):
        """Score ``predictions`` with the scorer, write ``score.json`` and add the
        leaderboard entry ``name`` (default: the recipe's name) described by ``method``
        (default: the recipe's description) in the recipe's ``role`` (``method`` or
        ``reference``), unless ``--no-leaderboard``. ``resolved``: what the run found for
        values its recipe left open (``config.RESOLVED_KEY``), part of the entry's identity.

        Returns the full ``minbench.scoring.score.ScoreResult`` (metrics, intervals,
        per-sample rows): report from it, never from a second computation.
        """
        from minbench.scoring.record import score_and_record
        from minbench.recipes import RESOLVED_KEY

        name = self.recipe_name if name is None else name
        method = str(self.config.get("description") or name) if method is None else method
        entry = None
        if self.leaderboard:
            config = jsonable({**self.config, **({RESOLVED_KEY: resolved} if resolved else {})})
            entry = dict(name=name, method=method, config=config, seed=self.seed, data_dir=self.data_dir,
                         role=self.config.get("role"))
        result, board = score_and_record(self.card.id, Path(predictions), self.data_dir, self.dir / "score.json",
                                         entry=entry)
        if board is not None:
            self.extras["leaderboard"] = str(board)
        return result
