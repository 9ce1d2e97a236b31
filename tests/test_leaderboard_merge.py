"""``merge_entry``: where one scored run or submission goes on a board, without a file."""

from __future__ import annotations

import copy

import pytest

from minbench.cards import get_card
from minbench.scoring.leaderboard import EntryRecord, entry_name, merge_entry, new_board, validate_board

FP = "sha256:" + "d" * 32
NAMES = ("top1", "top3", "top5", "top10", "macro_recall")
CI = {"top1": {"low": 0.1, "high": 0.9, "level": 0.95, "n_resamples": 1000, "seed": 0,
               "method": "percentile bootstrap"}}


def board() -> dict:
    return new_board(get_card("fewshot-10"), {"name": "synth", "version": "1", "source": "synth", "fingerprint": FP})


def run(top1: float, seed: int | None = 0, *, name="recipe", chash="abcdef123456", modified=(), source="run",
        task_version=1, role="method") -> EntryRecord:
    metrics = {k: top1 for k in NAMES}
    return EntryRecord(name=name, method="m", source=source, metrics=metrics, metric_names=NAMES, ci=CI,
                       n_samples=10, n_answered=10, date=f"2026-01-0{1 + (seed or 0)}T00:00:00Z",
                       code_version="minbench test", role=role, seed=seed,
                       config={"name": name} if source == "run" else None,
                       config_hash=chash if source == "run" else None, modified=list(modified),
                       submission_sha256="sha256:00", task_version=task_version)


def only(b: dict) -> dict:
    (e,) = b["entries"]
    return e


def test_merge_is_pure_and_gives_a_valid_board():
    b = board()
    before = copy.deepcopy(b)
    out = merge_entry(b, run(0.5))
    assert b == before and out is not b
    assert validate_board(out, where="test") is out
    e = only(out)
    assert (e["name"], e["n_seeds"], e["metrics"]["top1"], e["ci"], e["modified"]) == ("recipe", 1, 0.5, CI, [])
    assert e["std"]["top1"] is None  # one seed: the spread is undefined, not 0


def test_seeds_of_one_config_join_one_entry_and_a_rerun_seed_replaces_itself():
    b = merge_entry(board(), run(0.2, 0))
    first = only(b)["id"]
    b = merge_entry(b, run(0.4, 1))
    b = merge_entry(b, run(0.6, 2))
    e = only(b)
    assert e["id"] == first and [r["seed"] for r in e["seeds"]] == [0, 1, 2] and e["n_seeds"] == 3
    assert e["metrics"]["top1"] == pytest.approx(0.4) and e["std"]["top1"] == pytest.approx(0.2)
    assert e["ci"] == {}  # one seed's interval is not the mean's (the store pools the per-sample files)
    e = only(merge_entry(b, run(0.9, 1)))
    assert e["id"] == first and [r["metrics"]["top1"] for r in e["seeds"]] == [0.2, 0.9, 0.6]


def test_seeds_are_ordered_with_the_unseeded_first():
    b = merge_entry(board(), run(0.2, 5))
    b = merge_entry(b, run(0.4, None))
    b = merge_entry(b, run(0.3, 1))
    assert [r["seed"] for r in only(b)["seeds"]] == [None, 1, 5]


@pytest.mark.parametrize("other", [
    run(0.9, 1, chash="0123456789ab"),      # another config of the same name
    run(0.9, 1, task_version=2),            # another task version: a changed protocol never mixes
    run(0.9, None, source="submission"),    # a submission replaces its name
])
def test_what_never_joins_replaces_the_entry(other):
    b = merge_entry(board(), run(0.2, 0))
    e = only(merge_entry(b, other))
    assert e["id"] != only(b)["id"] and e["n_seeds"] == 1 and e["metrics"]["top1"] == 0.9


def test_a_modified_config_is_its_own_marked_entry():
    changed = run(0.3, 0, chash="fedcba987654", modified=["trainer.max_epochs=1"])
    assert entry_name(changed) == "recipe*fedcba"
    b = merge_entry(merge_entry(board(), run(0.2, 0)), changed)
    entries = {e["name"]: e for e in b["entries"]}
    assert set(entries) == {"recipe", "recipe*fedcba"}
    assert entries["recipe*fedcba"]["modified"] == ["trainer.max_epochs=1"] and entries["recipe"]["modified"] == []
    # a second seed of the same modified config joins it
    b = merge_entry(b, run(0.5, 1, chash="fedcba987654", modified=["trainer.max_epochs=1"]))
    assert {e["name"]: e["n_seeds"] for e in b["entries"]} == {"recipe": 1, "recipe*fedcba": 2}


def test_submission_and_role_fields():
    e = only(merge_entry(board(), run(0.7, None, name="sub", source="submission", role="reference")))
    assert (e["source"], e["role"], e["config_hash"], e["modified"], e["seeds"][0]["seed"]) == \
        ("submission", "reference", None, None, None)


def test_a_replaced_entry_moves_last_and_others_keep_their_order():
    b = merge_entry(merge_entry(board(), run(0.2, 0, name="a")), run(0.3, 0, name="b"))
    b = merge_entry(b, run(0.4, 0, name="a", chash="0123456789ab"))
    assert [e["name"] for e in b["entries"]] == ["b", "a"]


def test_missing_metric_values_are_left_out_of_the_mean():
    first = run(0.2, 0)
    gap = EntryRecord(**{**first.__dict__, "seed": 1, "metrics": {**first.metrics, "macro_recall": None}})
    e = only(merge_entry(merge_entry(board(), first), gap))
    assert e["metrics"]["macro_recall"] == 0.2 and e["std"]["macro_recall"] is None
    assert e["std"]["top1"] == 0.0
