"""Arguments several verbs share."""

from __future__ import annotations

import argparse


def add_verbosity_flags(parser: argparse.ArgumentParser) -> None:
    """``--quiet`` / ``--verbose`` on a sub-command (the top level has them too)."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS,
                       help="print results and errors only (no notices, no progress)")
    group.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                       help="show the frameworks' own output (Lightning's bars, summaries, warnings)")
