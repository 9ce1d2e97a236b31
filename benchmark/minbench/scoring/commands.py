"""``minbench score`` and ``minbench leaderboard``."""

from __future__ import annotations


def register(sub) -> None:
    pass
