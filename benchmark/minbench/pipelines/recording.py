"""Score a written submission and record it: the one place a pipeline does both.

Every number a run reports comes from the scorer (``scoring.score``); the entry goes to the
task's board through the leaderboard's public ``add_entry``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def score_and_record(task_id: str, predictions: Path, data_dir: Path, score_json: Path, *,
                     task_data=None, entry: dict[str, Any] | None = None):
    """Score ``predictions`` for ``task_id`` against ``data_dir`` (or the loaded ``task_data``),
    write the score JSON to ``score_json`` and, when ``entry`` is given (``add_entry``'s
    keywords: ``name``, ``method``, ``config``, ``seed``, ``role``, ...), add it to the task's
    leaderboard as a run's entry.

    Returns ``(ScoreResult, board path or None)``.
    """
    from minbench.scoring.score import score_submission, write_score_json

    result = score_submission(task_id, Path(predictions), data_dir, task_data=task_data)
    write_score_json(result, score_json)
    board = None
    if entry is not None:
        from minbench.scoring.leaderboard import add_entry

        board = add_entry(task_id, result, source="run", **entry)
    return result, board
