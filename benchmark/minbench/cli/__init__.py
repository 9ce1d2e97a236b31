"""The ``minbench`` command: data, list, run, score, leaderboard, compare, export, bench.

One module per verb holds all of that verb's arguments and turns them into plain values
for the layer below (``cli/data.py``, ``cli/lists.py``, ``cli/run.py``, ``cli/score.py``,
``cli/export.py``, ``cli/bench.py``); this file assembles them and turns a user's mistake into one line and
a nonzero exit. Nothing below this package sees argparse.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from minbench._version import __version__
from minbench.errors import UserError

#: the verb modules, in the order ``minbench --help`` lists their verbs
VERB_MODULES = (
    "minbench.cli.data",
    "minbench.cli.lists",
    "minbench.cli.run",
    "minbench.cli.score",
    "minbench.cli.export",
    "minbench.cli.bench",
)


def _quiet_environment() -> None:
    # albumentations asks the network for updates at import; hubs hang without a network.
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    os.environ.setdefault("WANDB_SILENT", "true")


class _Parser(argparse.ArgumentParser):
    """argparse, but a mistake is one line (``minbench run: error: ...``), exit 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="minbench",
        description="Benchmark suite for recognising minerals in photographs (MineralImage5k).",
    )
    parser.add_argument("--version", action="version", version=f"minbench {__version__}")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("-q", "--quiet", action="store_true", help="print results and errors only")
    group.add_argument("-v", "--verbose", action="store_true",
                       help="show the frameworks' own output (Lightning's bars, summaries, warnings)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in VERB_MODULES:  # imported here: `import minbench.cli` stays light
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    _quiet_environment()
    parser = build_parser()
    args = parser.parse_args(argv)
    from minbench.console import configure

    if getattr(args, "quiet", False) and getattr(args, "verbose", False):
        parser.error("--quiet and --verbose exclude each other")
    previous = os.environ.get("MINBENCH_VERBOSITY")
    configure(quiet=getattr(args, "quiet", False), verbose=getattr(args, "verbose", False))
    try:
        result = args.func(args)
    except UserError as exc:
        for line in str(exc).splitlines() or [""]:  # one line per mistake
            print(f"minbench: error: {line}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("minbench: interrupted", file=sys.stderr)
        return 130
    finally:  # main() may be called again in one process (tests, the Python API)
        if previous is None:
            os.environ.pop("MINBENCH_VERBOSITY", None)
        else:
            os.environ["MINBENCH_VERBOSITY"] = previous
    return int(result or 0)
