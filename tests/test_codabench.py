"""``minbench export codabench``: the bundle's fields, and its scoring program run as the
platform runs it (``input/ref``, ``input/res``, ``output/scores.json``) giving ``minbench
score``'s numbers exactly, with no torch, and refusing a malformed submission in one line."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml

from minbench.cards import all_cards, get_card
from minbench.cli import main
from minbench.export.codabench import export_codabench
from minbench.export.program import column_key

TASKS = list(all_cards())
#: runs the carried score.py as Codabench does, and fails if anything imported torch
RUNNER = ("import runpy, sys\nsys.argv = ['score.py', sys.argv[1], sys.argv[2]]\ncode = 0\n"
          "try:\n    runpy.run_path(sys.argv[0], run_name='__main__')\nexcept SystemExit as e:\n    code = e.code\n"
          "assert 'torch' not in sys.modules, 'the scoring program imported torch'\nsys.exit(code)\n")


@pytest.fixture(scope="module")
def bundle(tiny_dataset, tmp_path_factory):
    root = tmp_path_factory.mktemp("codabench")
    order = ["size", *[t for t in TASKS if t != "size"]]  # the first --task first, whatever it is
    export_codabench(order, tiny_dataset, root / "bundle.zip", daily=3, private_fraction=0.5, seed=0)
    with zipfile.ZipFile(root / "bundle.zip") as zf:
        zf.extractall(root / "x")
    return root / "x", order


def test_competition_yaml(bundle):
    folder, order = bundle
    spec = yaml.safe_load((folder / "competition.yaml").read_text())
    assert spec["version"] == 2 and (folder / spec["image"]).is_file() and (folder / spec["terms"]).is_file()
    assert [p["file"] for p in spec["pages"]] and all((folder / p["file"]).read_text() for p in spec["pages"])
    (board,) = spec["leaderboards"]  # Codabench binds every phase to the first leaderboard
    cols = board["columns"]
    assert [c["index"] for c in cols] == list(range(len(cols)))
    assert [c["key"] for c in cols] == [column_key(t, m) for t in order for m in
                                        [get_card(t).headline] + [x.name for x in get_card(t).metrics
                                                                  if x.name != get_card(t).headline]]
    for c in cols:
        card = next(get_card(t) for t in order if c["key"].startswith(t.replace("-", "_") + "__"))
        spec_m = next(m for m in card.metrics if column_key(card.id, m.name) == c["key"])
        assert c["sorting"] == ("desc" if spec_m.higher_is_better else "asc")
        assert len(c["key"]) <= 36 and len(c["title"]) <= 36
    tasks = {t["index"]: t for t in spec["tasks"]}
    dev, final = spec["phases"]
    assert dev["max_submissions_per_day"] == 3 and final["start"] >= dev["end"]
    assert [tasks[i]["name"] for i in dev["tasks"]] == [f"{t} (dev)" for t in order]
    assert [tasks[i]["name"] for i in final["tasks"]] == [f"{t} (final)" for t in order]
    for t in tasks.values():
        assert (folder / t["scoring_program"] / "metadata.yaml").is_file() and (folder / t["reference_data"]).is_dir()
    assert (folder / spec["solutions"][0]["path"]).is_dir()


def _platform(folder: Path, task: str, part: str, res: Path, tmp: Path) -> subprocess.CompletedProcess:
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(folder / "reference_data" / f"{task}-{part}", tmp / "input" / "ref")
    shutil.copytree(res, tmp / "input" / "res")
    (tmp / "output").mkdir()
    return subprocess.run([sys.executable, "-c", RUNNER, str(tmp / "input"), str(tmp / "output")],
                          cwd=folder / "scoring_program", capture_output=True, text=True, timeout=120,
                          env={"PATH": "/usr/bin:/bin", "HOME": str(tmp)})


@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("part", ["dev", "final"])
def test_scoring_program_equals_minbench_score(task, part, bundle, tmp_path):
    folder, _ = bundle
    done = _platform(folder, task, part, folder / "starting_kit", tmp_path / "plat")
    assert done.returncode == 0, done.stderr
    scores = json.loads((tmp_path / "plat" / "output" / "scores.json").read_text())
    card = get_card(task)
    sub = tmp_path / "plat" / "input" / "res" / (task if card.submission_format == "mask_pngs" else f"{task}.csv")
    ref = tmp_path / "plat" / "input" / "ref"
    assert main(["score", "--task", task, "--predictions", str(sub), "--data", str(ref / "public"), "--truth",
                 str(ref / "truth"), "--part", part, "--out", str(tmp_path / "s.json")]) == 0
    mine = json.loads((tmp_path / "s.json").read_text())
    assert scores == {column_key(task, k): v for k, v in mine["metrics"].items() if v is not None}
    theirs = json.loads((tmp_path / "plat" / "output" / "score.json").read_text())
    for j in (theirs, mine):
        j.pop("scored_at"), j.pop("code_version"), j["submission"].pop("path")
    assert theirs == mine


def test_malformed_submission_same_line(bundle, tmp_path, capsys):
    folder, _ = bundle
    res = tmp_path / "res"
    res.mkdir()
    (res / "fewshot-10.csv").write_text("sample_id,pred_1\nnot_a_sample,quartz\n")
    done = _platform(folder, "fewshot-10", "dev", res, tmp_path / "plat")
    assert done.returncode != 0 and len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "plat" / "output" / "scores.json").exists()
    ref, sub = tmp_path / "plat" / "input" / "ref", tmp_path / "plat" / "input" / "res" / "fewshot-10.csv"
    code = main(["score", "--task", "fewshot-10", "--predictions", str(sub), "--data", str(ref / "public"),
                 "--truth", str(ref / "truth"), "--part", "dev", "--out", str(tmp_path / "s.json")])
    assert code == 2 and capsys.readouterr().err.strip() == done.stderr.strip()
    missing = _platform(folder, "size", "dev", tmp_path / "res", tmp_path / "plat2")
    assert missing.returncode == 2 and "size.csv" in missing.stderr and len(missing.stderr.strip().splitlines()) == 1
