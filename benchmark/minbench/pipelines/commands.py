"""``minbench run``."""

from __future__ import annotations

from minbench.errors import UserError


def register(sub) -> None:
    p = sub.add_parser("run", help="train/evaluate a task end to end and score it")
    p.add_argument("--task", required=True, help="task id (see tasks/)")
    p.set_defaults(func=_run)


def _run(args) -> int:
    raise UserError("`minbench run` is not implemented yet")
