"""What every leaderboard format shows, computed once: boards grouped by task, entries
ranked with their rank groups and seed spread, numbers as people read them, reference rows
labelled."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from minbench.cards import TaskCard, all_cards, is_fraction_kind, is_fraction_name
from minbench.scoring.bootstrap import DEFAULT_LEVEL

FORMATS = ("table", "markdown", "html")
#: the label before a reference row's name (``role: reference``), in every format
REFERENCE_MARK = "(ref)"
REFERENCE_NOTE = (f"{REFERENCE_MARK} reference row: a baseline that shows what one simple cue alone solves "
                  "(its method says which), ranked and compared like every entry")


def is_reference(entry: dict) -> bool:
    """Whether an entry is a reference baseline (``role: reference``) rather than a method."""
    return entry.get("role") == "reference"


def shown_name(entry: dict) -> str:
    """An entry's name as shown: reference rows carry ``REFERENCE_MARK`` in front."""
    return f"{REFERENCE_MARK} {entry['name']}" if is_reference(entry) else entry["name"]


# ---- grouping and ranking -------------------------------------------------------------

@dataclass
class TaskSection:
    card: TaskCard
    scored: list[tuple[Path, dict]] = field(default_factory=list)
    published: list[tuple[Path, dict]] = field(default_factory=list)
    reference: list[tuple[Path, dict]] = field(default_factory=list)


def group(boards: list[tuple[Path, dict]], task: str | None = None) -> list[TaskSection]:
    """Boards by task, in card order; reference boards beside every task of their kind."""
    cards = all_cards()
    order = sorted(cards, key=lambda t: [(0, int(p), "") if p.isdigit() else (1, 0, p)
                                               for p in re.split(r"(\d+)", t)])
    sections = {tid: TaskSection(cards[tid]) for tid in order if task in (None, tid)}
    for path, board in boards:
        if board["reference"]:
            for s in sections.values():
                if s.card.kind == board["kind"]:
                    s.reference.append((path, board))
        elif board["task"] in sections:
            s = sections[board["task"]]
            (s.scored if board["dataset"].get("fingerprint") else s.published).append((path, board))
    return [s for s in sections.values() if s.scored or s.published or s.reference or task]


def columns(board: dict) -> dict[str, dict]:
    return {m["name"]: m for m in board["metrics"]}


def ranked(board: dict) -> list[tuple[int | None, dict]]:
    """Entries best first on the headline (competition ranking: 1, 2, 2, 4); entries
    without a headline value come last, unranked. Reference boards are never ranked."""
    head = board.get("headline")
    col = columns(board).get(head) if head else None
    hib = col["higher_is_better"] if col else True

    def value(e):
        v = e["metrics"].get(head) if head else None
        return v if isinstance(v, (int, float)) and math.isfinite(v) else None

    have = sorted((e for e in board["entries"] if value(e) is not None),
                  key=lambda e: (-value(e) if hib else value(e), e["name"].casefold()))
    rest = sorted((e for e in board["entries"] if value(e) is None), key=lambda e: e["name"].casefold())
    out, last, rank = [], None, 0
    for i, e in enumerate(have, 1):
        if value(e) != last:
            rank, last = i, value(e)
        out.append((None if board["reference"] else rank, e))
    return out + [(None, e) for e in rest]


# ---- numbers --------------------------------------------------------------------------

def is_fraction(col: dict) -> bool:
    """A board column's values are fractions: by its metric kind (the cards' rule), else by
    its name (a reference board's metric of no known kind)."""
    kind = col.get("kind")
    return is_fraction_kind(kind) if kind else is_fraction_name(col["name"])


def fmt(value, col: dict) -> str:
    """A metric value as people read it: fractions in %, others with their unit."""
    if value is None or not math.isfinite(value):
        return "—"
    if is_fraction(col):
        return f"{100 * value:.1f}%"
    unit = col.get("unit") or ""
    return f"{value:.3g}{' ' + unit if unit else ''}" if abs(value) >= 1 else f"{value:.3f}{' ' + unit if unit else ''}"


def fmt_ci(ci: dict | None, col: dict) -> str:
    if not ci or ci.get("low") is None or ci.get("high") is None:
        return ""
    if is_fraction(col):
        return f"[{100 * ci['low']:.1f}, {100 * ci['high']:.1f}]"
    return f"[{ci['low']:.3g}, {ci['high']:.3g}]"


def dataset_line(board: dict) -> str:
    ds = board["dataset"]
    fp = ds.get("fingerprint")
    if board["reference"]:
        return f"dataset {ds['name']} ({ds['version']}) · numbers as published by its authors"
    where = f"truth fingerprint {fp[:23]}" if fp else "the paper's own copy (not re-scored)"
    return f"dataset {ds['name']} {ds['version']} · {where}"


def board_title(section: TaskSection, board: dict) -> str:
    if board["reference"]:
        return f"Reference: {board['title']} — another dataset, not comparable, not ranked"
    if not board["dataset"].get("fingerprint"):
        return f"Published: {board['dataset']['name']} — numbers as reported, not re-scored here"
    return f"{board['dataset']['name']} {board['dataset']['version']}"


def boards_of(section: TaskSection) -> list[tuple[Path, dict]]:
    return section.scored + section.published + section.reference


def headline_note(board: dict) -> str:
    head = board.get("headline")
    if not head:
        return ""
    col = columns(board)[head]
    return f"ranked by {head} ({'higher' if col['higher_is_better'] else 'lower'} is better)" \
        if not board["reference"] else f"headline {head}"


def origin(path: Path) -> str:
    """Whose board: the shipped ones, or yours (the write folder)."""
    from minbench.scoring.leaderboard import is_shipped

    return "shipped" if is_shipped(path) else "yours"


def fmt_std(std, col: dict) -> str:
    if std is None or not math.isfinite(std):
        return ""
    return f"±{100 * std:.1f}pt" if is_fraction(col) else f"±{std:.2g}{' ' + col['unit'] if col.get('unit') else ''}"


@dataclass
class Row:
    """One entry as shown: order, rank group text, seeds text."""

    rank: int | None
    group: str          # "1", "1–3", or the plain rank with "†" when no group could be formed
    seeds: str
    entry: dict


@dataclass
class BoardView:
    rows: list[Row]
    notes: list[str]    # per-sample files missing or truncated, and what the marks mean
    floors: list[dict]


def board_view(path: Path, board: dict) -> BoardView:
    """Entries best first with their rank groups (paired intervals against every other
    entry, ``compare.rank_groups``) and seed spread; floors; notes on missing results."""
    from minbench.scoring.compare import rank_groups

    head = board.get("headline")
    col = columns(board).get(head) if head else None
    scored = not board["reference"] and bool(board["dataset"].get("fingerprint"))
    groups = rank_groups(path, board) if scored and board["entries"] else None
    rows, notes = [], []
    for rank, e in ranked(board):
        if groups and e["name"] in groups.ranks:
            best, worst = groups.ranks[e["name"]]
            group = str(best) if best == worst else f"{best}–{worst}"
        else:
            group = f"{rank}†" if rank and scored else str(rank or "")
        n = e.get("n_seeds") or 0
        std = (e.get("std") or {}).get(head) if head else None
        seeds = "" if not scored else (f"{n} {fmt_std(std, col)}".strip() if col and n > 1 else str(n))
        rows.append(Row(rank, group, seeds, e))
    unrecorded = [r.entry["name"] for r in rows if r.group.endswith("†") and not r.entry.get("samples")]
    if unrecorded:
        notes.append(f"† no rank group, no per-sample results recorded: {', '.join(unrecorded)}")
    if groups:
        for name, problem in groups.problems.items():
            if name not in unrecorded:
                notes.append(f"† {name}: no rank group: {problem}")
    if groups and groups.ranks:
        notes.insert(0, f"rank: best–worst rank given the paired {DEFAULT_LEVEL:.0%} intervals of the headline "
                        "difference against every other entry")
    if any(is_reference(r.entry) for r in rows):
        notes.append(REFERENCE_NOTE)
    return BoardView(rows, notes, list(board.get("floors") or []))


def method_text(e: dict) -> str:
    mod = e.get("modified")
    return e["method"] + (f" (modified: {', '.join(mod)})" if mod else "")
