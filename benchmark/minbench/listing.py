"""``minbench list tasks|recipes|cams|backbones|datasets``: what there is to run.

Every list comes from the registry that owns it: the task cards (``cards.py``), the
recipes in ``baselines/``, the CAM registry (``models/cam.py``), the backbone aliases and
feature extractors (``models/backbones.py``) and timm, and the datasets (the embedded sizes
and the prepared datasets under ``$MINBENCH_HOME/datasets``). Tasks, recipes and datasets import no
deep-learning framework; the Python API (``minbench.list_tasks()`` ...) returns the same.
"""

from __future__ import annotations

import json
from typing import Any

from minbench.data.synth.options import EMBEDDED_SIZES

WHAT = ("tasks", "recipes", "cams", "backbones", "datasets")


def list_tasks() -> list[dict[str, Any]]:
    """Every task: id, kind, title, headline metric, default recipe."""
    from minbench.cards import all_cards

    return [{"id": c.id, "kind": c.kind, "headline": c.headline, "default_recipe": default_recipe(c.kind),
             "title": c.title} for c in all_cards().values()]


def default_recipe(kind: str) -> str | None:
    """The stem of a task kind's default recipe (the kind module's ``DEFAULT_RECIPE``),
    read from its source so no framework is imported."""
    import ast

    from minbench.pipelines import signatures

    found = signatures.lookup(f"minbench.pipelines.{kind}", "DEFAULT_RECIPE")
    if found is None or found[0] != "alias":
        return None
    try:
        return str(ast.literal_eval(found[1]))
    except ValueError:
        return None


def list_recipes(task: str | None = None) -> list[dict[str, Any]]:
    """Every shipped recipe: name, task kind, default task, description (optionally only
    those that can run ``task``)."""
    import yaml

    from minbench.cards import all_cards, get_card
    from minbench.recipes import shipped_recipes

    cards = all_cards()
    out = []
    for name, path in shipped_recipes().items():
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError):
            continue
        recipe_task = raw.get("task")
        kind = cards[recipe_task].kind if recipe_task in cards else None
        if task is not None and kind != get_card(task).kind:
            continue
        out.append({"name": name, "kind": kind, "task": recipe_task,
                    "default": kind is not None and default_recipe(kind) == name,
                    "description": " ".join(str(raw.get("description") or "").split())})
    return out


def list_cams() -> list[str]:
    """The CAM methods ``--cam`` accepts."""
    from minbench.models.cam import method_names

    return method_names()


def list_backbones(pattern: str | None = None) -> list[str]:
    """The short backbone names recipes use (timm aliases, then the feature extractors
    without weights); with ``pattern`` (e.g. ``resnet*``), the matching timm model names too."""
    from minbench.models.backbones import ALIASES, HANDCRAFTED

    names = [f"{k} ({v})" for k, v in ALIASES.items()] + [f"{k} ({what})" for k, (_, what) in HANDCRAFTED.items()]
    if pattern:
        import timm

        names += timm.list_models(pattern)
    return names


def list_datasets() -> list[dict[str, Any]]:
    """The embedded sizes (generated on first use) and every prepared dataset under
    ``$MINBENCH_HOME/datasets`` with its name, version, samples and unavailable tasks."""
    from minbench.data.manifest import read_info
    from minbench.errors import UserError
    from minbench.paths import cache_dir

    out: list[dict[str, Any]] = [{"name": f"synth-{s}", "kind": "embedded", "samples": None,
                                  "note": f"`minbench data generate --size {s}`"
                                  + (" (the default)" if s == "small" else ""), "path": ""}
                                 for s in EMBEDDED_SIZES]
    root = cache_dir() / "datasets"
    for info_path in sorted(root.glob("*/dataset.json")) if root.is_dir() else []:
        try:
            info = read_info(info_path.parent)
        except UserError:
            continue
        missing = info.unavailable_tasks
        out.append({"name": f"{info.name} {info.version}".strip(), "kind": "prepared",
                    "samples": info.n_samples,
                    "note": f"unavailable: {', '.join(missing)}" if missing else "", "path": str(info_path.parent)})
    return out


def register(sub) -> None:
    from minbench import console

    p = sub.add_parser("list", help="list tasks, recipes, CAM methods, backbones or datasets",
                       description="What there is to run, from the same registries `run` uses.")
    p.add_argument("what", choices=WHAT, metavar="WHAT", help=" | ".join(WHAT))
    p.add_argument("--task", default=None, help="recipes: only those that can run this task")
    p.add_argument("--pattern", default=None, help="backbones: also timm names matching this (e.g. 'resnet*')")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    console.add_flags(p)
    p.set_defaults(func=_list)


def _list(args) -> int:
    if args.what == "tasks":
        rows = list_tasks()
    elif args.what == "recipes":
        rows = list_recipes(args.task)
    elif args.what == "cams":
        rows = [{"name": n} for n in list_cams()]
    elif args.what == "backbones":
        rows = [{"name": n} for n in list_backbones(args.pattern)]
    else:
        rows = list_datasets()
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
