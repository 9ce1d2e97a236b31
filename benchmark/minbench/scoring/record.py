"""Score a written submission and record it: the one place that does both.

``minbench score`` (a submission) and ``minbench run`` (every pipeline's predictions, the
segmentation reference baselines, the authors' size rule) all come here: the scorer
(``scoring.score``) makes every number, the score JSON is written atomically, and the entry
goes to the task's board through the leaderboard's public ``add_entry``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from minbench.errors import UserError
from minbench.scoring.bootstrap import DEFAULT_RESAMPLES, DEFAULT_SEED


def score_and_record(task_id: str, predictions: Path, data_dir: Path | None, score_json: Path, *,
                     task_data=None, entry: dict[str, Any] | None = None, source: str = "run",
                     n_resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED, per_sample: bool = False):
    """Score ``predictions`` for ``task_id`` against ``data_dir`` (or the loaded ``task_data``),
    write the score JSON to ``score_json`` (``per_sample``: one record per test sample) and,
    when ``entry`` is given (``add_entry``'s keywords: ``name``, ``method``, ``config``,
    ``seed``, ``role``, ``path``, ``leaderboard_dir``, ``task_data`` for the floors, ...), add it to the task's leaderboard
    as an entry of ``source`` (``run`` or ``submission``).

    A folder that cannot be written is a one-line ``UserError``. Returns ``(ScoreResult,
    board path or None)``.
    """
    from minbench.scoring.score import score_submission, write_score_json

    result = score_submission(task_id, Path(predictions), data_dir, task_data=task_data,
                              n_resamples=n_resamples, seed=seed)
    try:
        write_score_json(result, score_json, per_sample=per_sample)
    except OSError as exc:
        raise UserError(f"{score_json}: cannot write the score JSON ({exc.strerror or exc}); "
                        "choose another --out") from None
    board = None
    if entry is not None:
        from minbench.scoring.leaderboard import add_entry

        try:
            board = add_entry(task_id, result, source=source, **entry)
        except OSError as exc:
            raise UserError(f"{exc.filename or 'leaderboard'}: cannot update the leaderboard "
                            f"({exc.strerror or exc}); the score JSON is at {score_json}") from None
    return result, board
