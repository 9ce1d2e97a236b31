"""``minbench list WHAT``: its arguments, and the rows of ``minbench.listing`` as a table or JSON."""

from __future__ import annotations

import json
from typing import Any

from minbench.cli.common import add_verbosity_flags


def register(sub) -> None:
    from minbench.listing import LISTS

    what = tuple(LISTS.names())
    p = sub.add_parser("list", help="list tasks, recipes, CAM methods, backbones or datasets",
                       description="What there is to run, from the same registries `run` uses.")
    p.add_argument("what", choices=what, metavar="WHAT", help=" | ".join(what))
    p.add_argument("--task", default=None, help="recipes: only those that can run this task")
    p.add_argument("--pattern", default=None, help="backbones: also timm names matching this (e.g. 'resnet*')")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    add_verbosity_flags(p)
    p.set_defaults(func=_list)


def _list(args) -> int:
    from minbench.listing import list_rows

    rows = list_rows(args.what, task=args.task, pattern=args.pattern)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    _print_table(rows)
    return 0


def _print_table(rows: list[dict[str, Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    # One line per row at any width: the last (free-text) column is cut with an ellipsis.
    table = Table(box=None, header_style="bold", pad_edge=False)
    columns = list(rows[0]) if rows else ["name"]
    cells = [[_cell(row.get(c)) for c in columns] for row in rows]
    for i, col in enumerate(columns):
        width = max([len(col)] + [len(r[i]) for r in cells])
        last = i == len(columns) - 1 and len(columns) > 1
        table.add_column(col, no_wrap=True, overflow="ellipsis", min_width=None if last else width)
    for r in cells:
        table.add_row(*r)
    Console().print(table)


def _cell(value: Any) -> str:
    if value is None or value is False:
        return ""
    return "*" if value is True else str(value)
