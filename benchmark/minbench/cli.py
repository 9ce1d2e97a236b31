"""The ``minbench`` command: data, run, score, leaderboard, bench.

Each verb lives with the code it drives (``data/commands.py``, ``pipelines/commands.py``,
``scoring/commands.py``, ``bench/``); this file only assembles them and turns a
user's mistake into one line and a nonzero exit.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from minbench import __version__
from minbench.errors import UserError

COMMAND_MODULES = (
    "minbench.data.commands",
    "minbench.pipelines.commands",
    "minbench.scoring.commands",
    "minbench.bench",
)


def _quiet_environment() -> None:
    # albumentations asks the network for updates at import; hubs hang without a network.
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    os.environ.setdefault("WANDB_SILENT", "true")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="minbench",
        description="Benchmark suite for recognising minerals in photographs (MineralImage5k).",
    )
    parser.add_argument("--version", action="version", version=f"minbench {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    _quiet_environment()
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        result = args.func(args)
    except UserError as exc:
        print(f"minbench: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("minbench: interrupted", file=sys.stderr)
        return 130
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
