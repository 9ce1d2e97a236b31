"""``minbench export codabench``: its arguments, and the call into ``minbench.export``."""

from __future__ import annotations

from pathlib import Path


def register(sub) -> None:
    from minbench.cards import task_ids
    from minbench.export.codabench import DEFAULT_DAILY_LIMIT, DEFAULT_PRIVATE_FRACTION, DOCKER_IMAGE

    p = sub.add_parser("export", help="export tasks to a hosting platform (a Codabench competition bundle)")
    verbs = p.add_subparsers(dest="export_command", metavar="PLATFORM", required=True)
    c = verbs.add_parser("codabench", help="write a Codabench competition bundle (zip) with hidden test labels",
                         description="A Codabench v2 competition bundle: competition.yaml (a dev and a final phase, "
                                     "a leaderboard per task), the truth as reference data, minbench's own scorer as "
                                     "the scoring program, the no-training reference baselines as starting kit.")
    c.add_argument("--task", dest="tasks", action="append", required=True,
                   help=f"a task (repeatable; the first one's leaderboard first): {', '.join(task_ids())}")
    c.add_argument("--data", type=Path, default=None, help="dataset folder with its truth (default: the embedded one)")
    c.add_argument("--out", type=Path, required=True, help="the bundle zip to write")
    c.add_argument("--daily-limit", type=int, default=DEFAULT_DAILY_LIMIT,
                   help=f"submissions per participant and day (default {DEFAULT_DAILY_LIMIT})")
    c.add_argument("--private-fraction", type=float, default=DEFAULT_PRIVATE_FRACTION,
                   help=f"fraction of each test set in the final phase (default {DEFAULT_PRIVATE_FRACTION})")
    c.add_argument("--seed", type=int, default=0, help="seed of the dev/final split (default 0)")
    c.add_argument("--docker-image", default=DOCKER_IMAGE,
                   help=f"the image the scoring program runs in: Python 3 with NumPy, pandas, PyArrow, PyYAML and "
                        f"Pillow (default {DOCKER_IMAGE})")
    c.set_defaults(func=_codabench)


def _codabench(args) -> int:
    from minbench.export.codabench import export_codabench

    out = export_codabench(args.tasks, args.data, args.out, daily=args.daily_limit,
                           private_fraction=args.private_fraction, seed=args.seed, docker_image=args.docker_image)
    print(f"wrote {out}")
    return 0
