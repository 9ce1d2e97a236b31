"""Leaderboards as a terminal table (rich), Markdown (for the README) or one HTML file.

Boards are grouped by task: the scored boards (one per dataset fingerprint, each ranked
on its own), then published numbers for the task, then reference boards of other
datasets of the same kind (listed, never ranked). Reference rows (entries whose ``role``
is ``reference``: a baseline showing what one simple cue alone solves, e.g. colour) are
ranked and compared like the others and labelled ``(ref)`` with a note under the board.

``rows`` computes what every format shows (grouping, ranking, rank groups, formatted
numbers); ``text`` draws the terminal table and the Markdown; ``page`` the self-contained
HTML page (inline CSS, inline JS for sorting, inline SVG for the intervals and charts).
"""

from minbench.scoring.render.page import render_html
from minbench.scoring.render.rows import (FORMATS, REFERENCE_MARK, REFERENCE_NOTE, BoardView, Row, TaskSection,
                                          board_title, board_view, dataset_line, fmt, fmt_ci, fmt_std, group,
                                          is_fraction, is_reference, method_text, origin, ranked, shown_name)
from minbench.scoring.render.text import render_markdown, render_table

__all__ = ["BoardView", "FORMATS", "REFERENCE_MARK", "REFERENCE_NOTE", "Row", "TaskSection", "board_title",
           "board_view", "dataset_line", "fmt", "fmt_ci", "fmt_std", "group", "is_fraction", "is_reference",
           "method_text", "origin", "ranked", "render_html", "render_markdown", "render_table", "shown_name"]
