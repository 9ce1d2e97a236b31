"""The Codabench scoring program: minbench's own scorer, run as the platform runs it.

Codabench unpacks a task's reference data into ``input/ref`` and a participant's
submission into ``input/res``, runs the program and reads ``output/scores.json``. The
bundle carries this package's scoring code beside ``score.py`` (no install, no network,
no torch); ``score.py`` calls ``main``. ``input/ref`` holds ``minbench-ref.json`` (task,
part), ``public/`` (the public dataset's manifest and ``dataset.json``) and ``truth/`` (the
truth bundle): scored by ``score.load_task_data(task, public, truth=truth, part=part)``,
exactly ``minbench score --data PUBLIC --truth TRUTH --part PART``. A submission that
``minbench score`` refuses is refused with the same line, exit 2.
"""

from __future__ import annotations

import sys
from pathlib import Path

from minbench.errors import UserError
from minbench.io import read_json, write_json_atomic

REF_FILE = "minbench-ref.json"


def column_key(task_id: str, metric: str) -> str:
    """The leaderboard column (and ``scores.json`` key) of a task's metric."""
    return f"{task_id.replace('-', '_')}__{metric}"


def submission_path(res: Path, task_id: str, fmt: str) -> Path:
    """The task's file in the submission: ``<task>.csv``, or ``<task>/`` / ``<task>.zip`` of masks."""
    names = [f"{task_id}/", f"{task_id}.zip"] if fmt == "mask_pngs" else [f"{task_id}.csv"]
    for name in names:
        if (res / name.rstrip("/")).exists():
            return res / name.rstrip("/")
    found = sorted(p.name for p in res.iterdir()) if res.is_dir() else []
    raise UserError(f"{res}: no {' or '.join(names)} in the submission (found: {', '.join(found) or 'nothing'})")


def score_folders(input_dir: Path, output_dir: Path) -> dict:
    """Score ``input_dir/res`` against ``input_dir/ref``; write ``output_dir/scores.json``
    (column key -> value; a metric undefined on these rows, e.g. R² of one answer, is left
    out: Codabench stores a number per column) and ``score.json`` (the full
    score, as ``minbench score`` writes it). Returns the scores."""
    from minbench.cards import get_card
    from minbench.scoring.score import load_task_data, score_submission, write_score_json

    ref = input_dir / "ref"
    spec = read_json(ref / REF_FILE, "minbench reference data", missing=None)
    if not isinstance(spec, dict) or "task" not in spec:
        raise UserError(f"{ref / REF_FILE}: missing or not a minbench reference description")
    card = get_card(str(spec["task"]))
    data = load_task_data(card.id, ref / "public", truth=ref / "truth", part=spec.get("part"))
    predictions = submission_path(input_dir / "res", card.id, card.submission_format)
    result = score_submission(card.id, predictions, task_data=data)
    scores = {column_key(card.id, k): v for k, v in result.to_json()["metrics"].items() if v is not None}
    output_dir.mkdir(parents=True, exist_ok=True)
    write_score_json(result, output_dir / "score.json")
    write_json_atomic(output_dir / "scores.json", scores)
    return scores


def main(argv: list[str] | None = None) -> int:
    """``score.py [INPUT OUTPUT]`` (default ``/app/input /app/output``, Codabench's folders)."""
    argv = sys.argv[1:] if argv is None else argv
    input_dir = Path(argv[0]) if argv else Path("/app/input")
    output_dir = Path(argv[1]) if len(argv) > 1 else Path("/app/output")
    try:
        scores = score_folders(input_dir, output_dir)
    except UserError as exc:
        for line in str(exc).splitlines() or [""]:
            print(f"minbench: error: {line}", file=sys.stderr)
        return exc.exit_code
    for key, value in scores.items():
        print(f"{key}: {value}")
    return 0
