"""Paired comparisons of two entries (``minbench compare``) and a board's rank groups.

Both read the entries' per-sample results (``samples.py``) and compute with
``stats.py``: the difference of every card metric with a paired bootstrap interval
(the same resampled sample indices for both; classes first where the card clusters a
metric by class), and for top-k accuracy the exact McNemar test.

Seeds: where both sides have the same seeds, only those are used, seed paired with seed;
the difference is the mean over paired seeds of the per-seed differences, resampling
samples jointly for all seeds. With no seed in common each side's mean over its own seeds
is compared. McNemar is run per paired seed; the reported ``p`` is the largest of them
(an intersection-union test: significant only if every seed pair is).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from minbench.cards import get_card
from minbench.errors import UserError
from minbench.scoring import stats
from minbench.scoring.bootstrap import DEFAULT_LEVEL, DEFAULT_RESAMPLES, DEFAULT_SEED
from minbench.scoring.samples import Samples, SamplesError


@dataclass
class Side:
    """One side of a comparison: an entry of a board, or a scored predictions file."""

    label: str
    dataset: dict
    samples: Samples
    where: str


@dataclass
class Comparison:
    task: str
    a: Side
    b: Side
    seeds: str                     # how seeds were paired, in words
    rows: list[dict] = field(default_factory=list)

    def to_json(self) -> dict:
        return {"task": self.task, "a": self.a.label, "b": self.b.label, "dataset": self.a.dataset,
                "n_samples": self.a.samples.n, "seeds": self.seeds, "metrics": self.rows}


# ---- finding the two sides ------------------------------------------------------------

def _scored_boards(task: str, dirs) -> list[tuple[Path, dict]]:
    from minbench.scoring.leaderboard import load_boards

    return [(p, b) for p, b in load_boards(dirs) if b["task"] == task and not b["reference"]
            and b["dataset"].get("fingerprint")]


def _from_file(task: str, path: Path, data_dir, task_data) -> Side:
    from minbench.scoring.samples import family_of, from_table
    from minbench.scoring.score import score_submission

    r = score_submission(task, path, data_dir, task_data=task_data, n_resamples=1)
    card = get_card(task)
    return Side(str(path), r.dataset, from_table(family_of(card.kind), r.per_sample["sample_id"], r.table, None),
                f"predictions {path}")


def _entries(task: str, name: str, boards) -> list[tuple[Path, dict, dict]]:
    return [(p, b, e) for p, b in boards for e in b["entries"] if e["name"] == name]


def resolve(task: str, a: str, b: str, *, data_dir=None, dirs=None) -> tuple[Side, Side]:
    """The two sides named by ``a`` and ``b``: a predictions file (scored now) or an entry
    name on one of the task's boards. Refuses (``UserError``) entries on different datasets."""
    from minbench.scoring.leaderboard import describe_dataset, entry_samples

    get_card(task)
    task_data = None
    files = {x: Path(x) for x in (a, b) if Path(x).exists()}
    if files:
        from minbench.scoring.score import load_task_data

        task_data = load_task_data(task, data_dir)
    boards = _scored_boards(task, dirs) if len(files) < 2 else []
    found = {x: _entries(task, x, boards) for x in (a, b) if x not in files}
    for x, hits in found.items():
        if not hits:
            from minbench.scoring.leaderboard import load_boards

            other = sorted({b["task"] for _, b in load_boards(dirs) if b["task"] and b["task"] != task
                            and any(e["name"] == x for e in b["entries"])})
            if other:
                raise UserError(f"compare: {x!r} is an entry of task {', '.join(other)}, not {task}; entries of "
                                "different tasks are never compared")
            raise UserError(f"compare: {x!r} is neither a predictions file nor an entry on a {task} board")
    fps = {x: {p_b[1]["dataset"]["fingerprint"] for p_b in hits} for x, hits in found.items()}
    if files:
        fps.update({x: {task_data.info.identity()["fingerprint"]} for x in files})
    common = fps[a] & fps[b]
    if not common:
        da = describe_dataset(found[a][0][1]["dataset"]) if a in found else describe_dataset(
            task_data.info.identity())
        db = describe_dataset(found[b][0][1]["dataset"]) if b in found else describe_dataset(
            task_data.info.identity())
        raise UserError(f"compare: {a} is scored on {da} and {b} on {db}; results on different datasets are "
                        "never compared")
    fp = _pick_dataset(common, found, a, b, data_dir)
    sides = []
    for x in (a, b):
        if x in files:
            sides.append(_from_file(task, files[x], data_dir, task_data))
            continue
        path, board, entry = next((p, bd, e) for p, bd, e in found[x] if bd["dataset"]["fingerprint"] == fp)
        try:
            s = entry_samples(path, entry)
        except SamplesError as exc:
            raise UserError(f"compare: {x}: {exc}") from None
        sides.append(Side(x, board["dataset"], s, f"entry of {path}"))
    return sides[0], sides[1]


def _pick_dataset(common: set, found: dict, a: str, b: str, data_dir) -> str:
    """The dataset both entries are compared on: the only one they share, else the one ``--data``
    names; several and no ``--data`` is refused (a silent pick could compare the wrong boards)."""
    if len(common) == 1:
        return next(iter(common))
    if data_dir is not None:
        from minbench.data.manifest import read_info

        want = read_info(data_dir).identity()["fingerprint"]
        if want in common:
            return want
    from minbench.scoring.leaderboard import describe_dataset

    names = sorted({describe_dataset(bd["dataset"]) for x in (a, b) for _, bd, _ in found.get(x, [])
                    if bd["dataset"]["fingerprint"] in common})
    raise UserError(f"compare: {a} and {b} are both on boards of {len(common)} datasets ({'; '.join(names)}); "
                    "choose one with --data DIR")


# ---- the comparison -------------------------------------------------------------------

def _check_same_samples(a: Side, b: Side) -> None:
    same = a.samples.family == b.samples.family and np.array_equal(a.samples.sample_id, b.samples.sample_id)
    if same and "target" in a.samples.tables[0]:
        same = np.array_equal(a.samples.tables[0]["target"], b.samples.tables[0]["target"])
    if not same:
        raise UserError(f"compare: {a.label} ({a.samples.n} samples) and {b.label} ({b.samples.n} samples) are "
                        "scored on different sample sets; only results on the same test samples are compared")


def paired_seeds(a: Samples, b: Samples) -> tuple[Samples, Samples, str, bool]:
    """The seeds to compare: those both have (paired), else all of each side's."""
    common = [s for s in a.seeds if s in b.seeds]
    if common == [None]:
        return a, b, "one set of predictions each", True
    if common:
        return a.select(common), b.select(common), f"paired seeds {', '.join(map(str, common))}", True
    return a, b, (f"no seed in common: mean over {len(a.seeds)} seed(s) of A vs {len(b.seeds)} of B"), False


def compare_sides(task: str, a: Side, b: Side, *, n_resamples: int = DEFAULT_RESAMPLES,
                  level: float = DEFAULT_LEVEL, seed: int = DEFAULT_SEED) -> Comparison:
    """Every card metric: A, B, A - B with its paired interval; McNemar for top-k."""
    card = get_card(task)
    _check_same_samples(a, b)
    sa, sb, how, paired = paired_seeds(a.samples, b.samples)
    out = Comparison(task, a, b, how)
    for spec in card.metrics:
        diff, ci = stats.paired_difference(spec, sa.tables, sb.tables, n_resamples=n_resamples, level=level,
                                           seed=seed)
        row = {"metric": spec.name, "a": stats.point(spec, sa.tables), "b": stats.point(spec, sb.tables),
               "diff": diff, "ci": ci.to_json(), "higher_is_better": spec.higher_is_better}
        if spec.kind == "topk_accuracy" and (paired or (len(sa.seeds) == 1 and len(sb.seeds) == 1)):
            tests = [stats.mcnemar(ta["pos"] < spec.k, tb["pos"] < spec.k) for ta, tb in zip(sa.tables, sb.tables)]
            row["mcnemar"] = {"p": max(t["p"] for t in tests), "per_seed": tests}
        out.rows.append(row)
    return out


def compare(task: str, a: str, b: str, *, data_dir=None, dirs=None, n_resamples: int = DEFAULT_RESAMPLES,
            level: float = DEFAULT_LEVEL, seed: int = DEFAULT_SEED) -> Comparison:
    """Compare ``a`` with ``b`` on ``task``: entry names (on the task's boards in ``dirs``,
    default yours and the shipped ones) or predictions files (scored against ``data_dir``)."""
    sa, sb = resolve(task, a, b, data_dir=data_dir, dirs=dirs)
    return compare_sides(task, sa, sb, n_resamples=n_resamples, level=level, seed=seed)


# ---- rank groups ----------------------------------------------------------------------

@dataclass
class RankGroups:
    """Best and worst rank each entry could hold (by name), and why an entry has none."""

    ranks: dict[str, tuple[int, int]]
    problems: dict[str, str]


def rank_groups(board_path: Path, board: dict, *, n_resamples: int = DEFAULT_RESAMPLES,
                level: float = DEFAULT_LEVEL, seed: int = DEFAULT_SEED) -> RankGroups:
    """For each ranked entry: best rank = 1 + the entries surely better (the paired interval
    of the headline difference excludes 0), worst rank = the entries with a headline minus
    those surely worse. An entry whose per-sample results are missing or do not fit gets
    no group (the others count it as possibly above and below them)."""
    from minbench.scoring.leaderboard import entry_samples

    head = board.get("headline")
    if board["reference"] or not board["dataset"].get("fingerprint") or not head:
        return RankGroups({}, {})
    card = get_card(board["task"])
    spec = next(m for m in card.metrics if m.name == head)
    entries = [e for e in board["entries"] if e["metrics"].get(head) is not None]
    loaded, problems = {}, {}
    for e in entries:
        try:
            loaded[e["name"]] = entry_samples(board_path, e)
        except SamplesError as exc:
            problems[e["name"]] = str(exc)
    names = list(loaded)
    if names:
        ref = loaded[names[0]]
        for x in names[1:]:
            if not np.array_equal(loaded[x].sample_id, ref.sample_id):
                problems[x] = f"{x}: scored on another sample set than {names[0]}"
        names = [x for x in names if x not in problems]
    better = {x: 0 for x in names}
    worse = {x: 0 for x in names}
    sign = 1.0 if spec.higher_is_better else -1.0
    for i, x in enumerate(names):
        for y in names[i + 1:]:
            sx, sy, _, _ = paired_seeds(loaded[x], loaded[y])
            _, ci = stats.paired_difference(spec, sx.tables, sy.tables, n_resamples=n_resamples, level=level,
                                            seed=seed)
            if ci.low is None or ci.high is None or not np.isfinite([ci.low, ci.high]).all():
                continue
            low, high = sorted((sign * ci.low, sign * ci.high))  # of "how much x beats y"
            if low > 0:  # x surely better than y
                better[y] += 1
                worse[x] += 1
            elif high < 0:  # y surely better than x
                better[x] += 1
                worse[y] += 1
    n = len(entries)
    return RankGroups({x: (1 + better[x], n - worse[x]) for x in names}, problems)
