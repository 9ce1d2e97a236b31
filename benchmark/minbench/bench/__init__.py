"""``minbench bench ...``: speed and memory benchmarks, side by side in one run.

Every module in this package that defines ``register(subparsers)`` adds one benchmark
(``bench/data.py`` adds ``minbench bench data``, and so on). Results are printed as JSON
and written with ``--json FILE``; speed is never asserted in unit tests.
"""

from __future__ import annotations

import importlib
import json
import pkgutil
import sys
from pathlib import Path

from minbench.io import write_json_atomic


def register(sub) -> None:
    p = sub.add_parser("bench", help="speed and memory benchmarks (JSON out)")
    bench_sub = p.add_subparsers(dest="bench_command", metavar="BENCHMARK", required=True)
    for mod in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{__name__}.{mod.name}")
        if hasattr(module, "register"):
            module.register(bench_sub)


def add_json_argument(parser) -> None:
    """The ``--json FILE`` option every benchmark takes."""
    parser.add_argument("--json", type=Path, default=None, help="also write the result to this JSON file")


def report(result: dict, json_path: Path | None) -> int:
    """Print a benchmark's result as JSON and write it to ``json_path`` when given."""
    json.dump(result, sys.stdout, indent=2)
    sys.stdout.write("\n")
    if json_path is not None:
        write_json_atomic(json_path, result)
    return 0
