"""Leaderboard files: schema on read, locked atomic adds, datasets never mixed, published rows."""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from minbench.cli import main
from minbench.errors import UserError
from minbench.paths import shipped_dir
from minbench.scoring import leaderboard as L
from minbench.scoring import render
from minbench.scoring.score import ScoreResult

FP_A = "sha256:" + "a" * 32
FP_B = "sha256:" + "b" * 32


def result(top1=0.5, *, task="fewshot-10", fp=FP_A, name="synth", n=200) -> ScoreResult:
    metrics = {"top1": top1, "top3": min(1.0, top1 + 0.2), "top5": min(1.0, top1 + 0.3), "top10": 1.0,
               "macro_recall": top1 - 0.01}
    return ScoreResult(
        task_id=task, headline="top1", metrics=metrics,
        ci={"top1": {"low": top1 - 0.05, "high": top1 + 0.05, "level": 0.95, "n_resamples": 1000, "seed": 0,
                     "method": "percentile bootstrap"}},
        n_samples=n, n_answered=n, dataset={"name": name, "version": "1", "source": "synth", "fingerprint": fp},
        submission={"path": "x.csv", "format": "ranked_csv", "sha256": "sha256:00", "bytes": 10},
        code_version="minbench test", scored_at="2026-01-02T03:04:05Z")


@pytest.fixture
def boards(tmp_path, monkeypatch):
    d = tmp_path / "boards"
    monkeypatch.setenv(L.ENV_DIR, str(d))
    return d


def test_add_entry_writes_a_valid_board_named_by_dataset(boards):
    path = L.add_entry("fewshot-10", result(0.5), name="a", method="m", source="run", config={"lr": 0.1}, seed=3)
    assert path == boards / "fewshot-10--synth-aaaaaaaa.json"
    board = L.load_board(path)
    assert board["dataset"]["fingerprint"] == FP_A and board["headline"] == "top1"
    (e,) = board["entries"]
    assert (e["name"], e["source"], e["config"], e["n_seeds"]) == ("a", "run", {"lr": 0.1}, 1)
    assert e["seeds"][0]["seed"] == 3 and e["seeds"][0]["metrics"]["top1"] == 0.5
    assert e["ci"]["top1"]["low"] == pytest.approx(0.45) and e["code_version"] == "minbench test"
    L.add_entry("fewshot-10", result(0.7), name="b", method="", source="submission")
    L.add_entry("fewshot-10", result(0.6), name="a", method="again", source="run")  # same name: replaced
    board = L.load_board(path)
    assert [(e["name"], e["metrics"]["top1"]) for e in board["entries"]] == [("b", 0.7), ("a", 0.6)]
    assert [r for r, _ in render.ranked(board)] == [1, 2]


def test_other_fingerprint_goes_to_its_own_file_and_explicit_file_refuses_it(boards):
    a = L.add_entry("fewshot-10", result(0.5), name="a", method="", source="run")
    b = L.add_entry("fewshot-10", result(0.9, fp=FP_B), name="b", method="", source="run")
    assert a != b and len(L.load_board(a)["entries"]) == len(L.load_board(b)["entries"]) == 1
    before = a.read_bytes()
    with pytest.raises(UserError, match="never share a leaderboard"):
        L.add_entry("fewshot-10", result(0.9, fp=FP_B), name="c", method="", source="run", path=a)
    with pytest.raises(UserError, match="a board for fewshot-10, not for fewshot-98"):
        L.add_entry("fewshot-98", result(0.9, task="fewshot-98"), name="c", method="", source="run", path=a)
    assert a.read_bytes() == before


def test_failed_write_leaves_the_board_as_it_was(boards, monkeypatch):
    path = L.add_entry("fewshot-10", result(0.5), name="a", method="", source="run")
    before = path.read_bytes()

    def broken(target, obj):
        Path(target).with_name("partial").write_text("{")
        raise OSError("disk full")

    monkeypatch.setattr(L.store, "write_json_atomic", broken)
    with pytest.raises(OSError):
        L.add_entry("fewshot-10", result(0.6), name="b", method="", source="run")
    assert path.read_bytes() == before


def test_bad_result_never_touches_the_board(boards):
    path = L.add_entry("fewshot-10", result(0.5), name="a", method="", source="run")
    before = path.read_bytes()
    with pytest.raises(UserError, match="source 'published'"):
        L.add_entry("fewshot-10", result(0.6), name="b", method="", source="published")
    with pytest.raises(UserError, match="name"):
        L.add_entry("fewshot-10", result(0.6), name="  ", method="", source="run")
    bad = result(0.6)
    bad.ci["top1"]["low"] = 0.9  # low above high: the entry fails validation before the lock
    with pytest.raises(UserError, match="low is above high"):
        L.add_entry("fewshot-10", bad, name="b", method="", source="run")
    assert path.read_bytes() == before


_WRITER = textwrap.dedent("""
    import sys
    sys.path.insert(0, {tests!r})
    from test_leaderboard import result
    from minbench.scoring.leaderboard import add_entry
    tag, n = sys.argv[1], int(sys.argv[2])
    for i in range(n):
        add_entry("fewshot-10", result(0.01 * i), name=f"{{tag}}-{{i}}", method="", source="submission")
""")


def test_two_writers_at_once_both_land(boards, tmp_path):
    script = tmp_path / "writer.py"
    script.write_text(_WRITER.format(tests=str(Path(__file__).parent)))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    procs = [subprocess.Popen([sys.executable, str(script), tag, "15"], env=env) for tag in ("x", "y", "z")]
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0]
    (path,) = boards.glob("*.json")
    names = {e["name"] for e in L.load_board(path)["entries"]}
    assert names == {f"{t}-{i}" for t in "xyz" for i in range(15)}


def test_an_entry_is_a_method_or_a_reference_and_keeps_its_role(boards):
    path = L.add_entry("fewshot-10", result(0.5), name="colour", method="colour only", source="run",
                       config={"k": 20}, seed=0, role="reference")
    L.add_entry("fewshot-10", result(0.7), name="cnn", method="", source="run")
    L.add_entry("fewshot-10", result(0.6), name="colour", method="colour only", source="run", config={"k": 20},
                seed=1, role="reference")  # a second seed joins the reference entry
    entries = {e["name"]: e for e in L.load_board(path)["entries"]}
    assert (entries["colour"]["role"], entries["colour"]["n_seeds"], entries["cnn"]["role"]) == ("reference", 2, "method")
    assert [e["name"] for _, e in render.ranked(L.load_board(path))] == ["cnn", "colour"]  # ranked like any entry
    with pytest.raises(UserError, match="role 'floor' is not one of method, reference"):
        L.add_entry("fewshot-10", result(0.5), name="x", method="", source="run", role="floor")
    # boards written before roles existed: every entry is a method
    board = json.loads(path.read_text())
    for e in board["entries"]:
        e.pop("role")
    path.write_text(json.dumps(board))
    assert not any(render.is_reference(e) for e in L.load_board(path)["entries"])


def _valid_board() -> dict:
    b = L.new_board(__import__("minbench.cards", fromlist=["get_card"]).get_card("fewshot-10"),
                    {"name": "synth", "version": "1", "source": "synth", "fingerprint": FP_A})
    b["entries"].append(L.new_entry(name="a", method="", source="run", metrics={"top1": 0.5}, ci={}, n_samples=3,
                                    date="2026-01-01T00:00:00Z", code_version=None, config=None, seeds=[]))
    return b


@pytest.mark.parametrize("edit, message", [
    (lambda b: b.update(schema="other/9"), "schema: expected 'minbench-leaderboard/2'"),
    (lambda b: b.pop("entries"), "board: missing 'entries'"),
    (lambda b: b["entries"][0].update(source="rumour"), "entries[0].source: 'rumour' is not one of"),
    (lambda b: b["entries"][0]["metrics"].update(top1="high"), "entries[0].metrics.top1: expected a finite number"),
    (lambda b: b["entries"][0]["metrics"].update(top2=0.3), "entries[0].metrics.top2: not a metric of this board"),
    (lambda b: b["entries"].append(copy.deepcopy(b["entries"][0])), "entries[1].name: 'a' appears twice"),
    (lambda b: b["dataset"].update(fingerprint=None), "needs a board scored on a known manifest fingerprint"),
    (lambda b: b["entries"][0].update(source="published"), "entries[0].citation: a published entry needs"),
    (lambda b: b.update(headline="top7"), "headline: 'top7' is not among the metrics"),
    (lambda b: b["entries"][0].update(n_samples=-1), "entries[0].n_samples: negative"),
    (lambda b: b["entries"][0].update(role="floor"), "entries[0].role: 'floor' is not one of method, reference"),
])
def test_validation_on_read_names_the_field(tmp_path, edit, message):
    b = _valid_board()
    L.validate_board(copy.deepcopy(b))
    edit(b)
    path = tmp_path / "fewshot-10--synth.json"
    path.write_text(json.dumps(b))
    with pytest.raises(UserError, match=re.escape(message)):
        L.load_board(path)


def test_broken_json_board_is_a_user_error_in_the_cli(boards, capsys):
    boards.mkdir()
    (boards / "fewshot-10--x.json").write_text("{not json")
    assert main(["leaderboard", "--dir", str(boards)]) == 2
    err = capsys.readouterr().err
    assert "fewshot-10--x.json: not valid JSON" in err and err.count("\n") == 1


def test_shipped_mineralnet_reference_rows():
    board = L.load_board(shipped_dir("leaderboards") / "mineralnet-mindat53.json")
    assert board["reference"] and board["task"] is None and board["kind"] == "classification"
    assert board["dataset"]["fingerprint"] is None
    got = {e["name"]: e["metrics"] for e in board["entries"]}
    assert got == {"Human expert": {"top1": 0.66}, "Trained layman": {"top1": 0.271},
                   "Inception-ResNet-v2": {"top1": 0.356, "top2": 0.581},
                   "Convolutional autoencoder": {"top1": 0.187}, "Uniform random": {"top1": 0.018}}
    assert all("MineralNet" in e["citation"] and e["source"] == "published" for e in board["entries"])
    assert [r for r, _ in render.ranked(board)] == [None] * 5  # listed, never ranked


def test_shipped_boards_all_validate():
    for path, board in L.load_boards([shipped_dir("leaderboards")]):
        assert board["schema"] == L.SCHEMA_ID, path


def test_add_published_cli_for_a_task_and_as_reference(boards, capsys):
    cite = "Someone et al., A paper, 2024"
    assert main(["leaderboard", "add-published", "--task", "fewshot-10", "--name", "ResNet-50",
                 "--metrics", "top1=71.5%,top5=0.93", "--citation", cite]) == 0
    board = L.load_board(boards / "fewshot-10--mineralimage5k.json")
    assert board["entries"][0]["metrics"] == {"top1": 0.715, "top5": 0.93}
    assert board["dataset"]["fingerprint"] is None and not board["reference"]
    # a scored entry never lands on the published board and vice versa
    scored = L.add_entry("fewshot-10", result(0.5, name="mineralimage5k"), name="mine", method="", source="run")
    assert scored != boards / "fewshot-10--mineralimage5k.json"
    assert main(["leaderboard", "add-published", "--task", "size", "--name", "x", "--metrics", "mae=2.5,top2=0.1",
                 "--citation", cite]) == 2
    assert "top2 not metrics of task size" in capsys.readouterr().err
    assert main(["leaderboard", "add-published", "--task", "fewshot-10", "--name", "x", "--metrics", "top1=66",
                 "--citation", cite]) == 2
    assert "fraction in [0, 1]" in capsys.readouterr().err
    assert main(["leaderboard", "add-published", "--task", "fewshot-10", "--name", "x", "--metrics", "top1=0.5",
                 "--citation", " "]) == 2
    assert "citation" in capsys.readouterr().err
    assert main(["leaderboard", "add-published", "--task", "zeroshot", "--reference", "--dataset", "other-set",
                 "--name", "CLIP", "--metrics", "top1=0.4,top2=0.5", "--citation", cite]) == 0
    ref = L.load_board(boards / "other-set.json")
    assert ref["reference"] and ref["kind"] == "zeroshot" and [m["name"] for m in ref["metrics"]] == ["top1", "top2"]


def test_parse_metrics_units():
    from minbench.cards import get_card

    assert L.parse_metrics("mae=2.5, mape=15%", get_card("size")) == {"mae": 2.5, "mape": 15.0}
    with pytest.raises(UserError, match="given twice"):
        L.parse_metrics("top1=0.1,top1=0.2")
    with pytest.raises(UserError, match="not a number"):
        L.parse_metrics("top1=abc")


def test_default_dir_is_the_users_never_the_shipped_one(tmp_path, monkeypatch):
    monkeypatch.setenv(L.ENV_DIR, str(tmp_path / "env"))
    assert L.default_leaderboard_dir() == tmp_path / "env"
    monkeypatch.delenv(L.ENV_DIR)
    monkeypatch.setenv("MINBENCH_HOME", str(tmp_path / "home"))
    # a checkout too: runs never dirty the tracked leaderboards/
    assert L.default_leaderboard_dir() == tmp_path / "home" / "leaderboards"
    assert L.read_dirs() == [tmp_path / "home" / "leaderboards", shipped_dir("leaderboards")]
    assert L.is_shipped(shipped_dir("leaderboards") / "x.json") and not L.is_shipped(tmp_path / "x.json")
