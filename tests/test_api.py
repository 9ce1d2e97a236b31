"""The Python API: ``minbench.get_task`` / ``datamodule`` / ``score``, the lists and the
leaderboards, lazy imports, and the documented examples run as the docs show them (the long
one in docs/python-api.md, the README's short one)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import minbench
from minbench.errors import UserError
from minbench.scoring.score import load_task_data

REPO = Path(__file__).resolve().parents[1]


def doc_block(page: str, heading: str) -> str:
    """The first ```python block after the line ``heading`` in ``page`` (relative to the repository)."""
    text = (REPO / page).read_text(encoding="utf-8")
    section = text[re.search(rf"^{re.escape(heading)}$", text, re.M).start():]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def _embedded_is(tiny_dataset) -> None:
    """The examples use the embedded dataset; here that is the tiny one."""
    from minbench.data.locate import embedded_dir

    target = embedded_dir()
    target.parent.mkdir(parents=True, exist_ok=True)
    target.symlink_to(tiny_dataset, target_is_directory=True)


def test_the_docs_example_trains_a_model_and_scores_it(tiny_dataset, tmp_path, monkeypatch, capsys):
    _embedded_is(tiny_dataset)
    monkeypatch.chdir(tmp_path)
    page = "docs/python-api.md"
    exec(compile(doc_block(page, "## Your own model, your own loop"), page, "exec"), {"__name__": "__docs__"})
    printed = capsys.readouterr().out
    assert printed.startswith("top1 ")
    # The API's score is the CLI's score of the same file.
    from minbench.cli import main

    api = minbench.get_task("fewshot-10").score(tmp_path / "predictions.csv")
    assert main(["score", "--task", "fewshot-10", "--predictions", str(tmp_path / "predictions.csv"),
                 "--no-leaderboard", "--out", str(tmp_path / "s.json")]) == 0
    import json

    cli = json.loads((tmp_path / "s.json").read_text())
    assert cli["metrics"] == pytest.approx(api.metrics) and cli["n_samples"] == api.n_samples


def test_the_readme_snippet_scores_a_submission(tiny_dataset, tmp_path, monkeypatch, capsys):
    _embedded_is(tiny_dataset)
    monkeypatch.chdir(tmp_path)
    # The snippet scores a predictions.csv of the user's; here, the true species (the scorer's truth).
    rows = load_task_data("fewshot-10").rows
    rows[["sample_id", "species"]].rename(columns={"species": "pred_1"}).to_csv("predictions.csv", index=False)
    exec(compile(doc_block("README.md", "## Common uses"), "README.md", "exec"), {"__name__": "__readme__"})
    assert capsys.readouterr().out.startswith("top1 1.0 ")


def test_task_card_datamodule_and_lists(tiny_dataset):
    task = minbench.get_task("segmentation")
    assert task.card.kind == "segmentation" and task.id == "segmentation"
    dm = task.datamodule(tiny_dataset, image_size=32, num_workers=0)
    assert dm.task == "segmentation" and dm.image_size == 32
    rows = task.test_frame(tiny_dataset)
    assert len(rows) == int(rows["segmentation"].sum()) and set(rows.columns) <= set(task.card.public_columns("test"))
    assert set(minbench.list_tasks()) >= {"fewshot-10", "zeroshot", "segmentation", "size"}
    assert "segmentation-gradcam" in minbench.list_recipes("segmentation")
    assert "fewshot-small-cnn" not in minbench.list_recipes("segmentation")
    assert "gradcam" in minbench.list_cams()
    with pytest.raises(UserError, match="not a task"):
        minbench.get_task("fewshot-11")


def test_load_leaderboard_reads_the_boards_of_a_task(tiny_dataset, tmp_path):
    from minbench.scoring.score import score_submission
    from minbench.scoring.leaderboard import add_entry

    rows = load_task_data("fewshot-10", tiny_dataset).rows  # an oracle: the scorer's truth
    sub = tmp_path / "p.csv"
    rows[["sample_id", "species"]].rename(columns={"species": "pred_1"}).to_csv(sub, index=False)
    add_entry("fewshot-10", score_submission("fewshot-10", sub, tiny_dataset), name="oracle", method="m",
              source="submission")
    boards = minbench.load_leaderboard("fewshot-10", dirs=[os.environ["MINBENCH_LEADERBOARDS"]])
    assert len(boards) == 1 and boards[0]["entries"][0]["name"] == "oracle"
    assert minbench.load_leaderboard("size", dirs=[os.environ["MINBENCH_LEADERBOARDS"]]) == []
    # The oracle against a file that is right on the first row only: paired, on the same samples.
    worse = tmp_path / "w.csv"
    first_only = rows[["sample_id", "species"]].rename(columns={"species": "pred_1"})
    first_only.loc[1:, "pred_1"] = first_only["pred_1"].iloc[0]
    first_only.to_csv(worse, index=False)
    wrong = int((first_only["pred_1"] != rows["species"].to_numpy()).sum())
    top1 = next(r for r in minbench.compare("fewshot-10", "oracle", worse, data=tiny_dataset).rows
                if r["metric"] == "top1")
    assert top1["diff"] == pytest.approx(wrong / len(rows)) and top1["ci"]["low"] <= top1["diff"] <= top1["ci"]["high"]


def test_import_and_lists_stay_light():
    code = ("import sys, minbench\n"
            "minbench.list_tasks(); minbench.list_recipes(); minbench.list_datasets(); minbench.get_task('size')\n"
            "from minbench.cli import main\n"
            "assert main(['list', 'tasks']) == 0 and main(['list', 'recipes']) == 0 and main(['list', 'datasets']) == 0\n"
            "heavy = [m for m in ('torch', 'lightning', 'timm', 'torchvision') if m in sys.modules]\n"
            "assert not heavy, heavy\n")
    env = {**os.environ, "PYTHONPATH": str(REPO / "benchmark")}
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert run.returncode == 0, run.stderr


def test_list_command_comes_from_the_registries(capsys, tmp_path, monkeypatch):
    import json

    from minbench.cli import main
    from minbench.data.synth.splits import SIZES
    from minbench.data.synth.options import EMBEDDED_SIZES
    from minbench.models.cam import METHODS

    assert tuple(SIZES) == EMBEDDED_SIZES
    assert main(["list", "cams", "--json"]) == 0
    assert [r["name"] for r in json.loads(capsys.readouterr().out)] == list(METHODS)
    assert main(["list", "tasks", "--json"]) == 0
    tasks = json.loads(capsys.readouterr().out)
    assert {t["id"]: t["default_recipe"] for t in tasks}["segmentation"] == "segmentation-scorecam-grabcut"
    prepared = Path(os.environ["MINBENCH_HOME"]) / "datasets" / "mine"
    prepared.mkdir(parents=True)
    (prepared / "dataset.json").write_text(json.dumps({"name": "mineralimage5k", "version": "1", "n_samples": 5,
                                                       "source": "release", "fingerprint": "sha256:0",
                                                       "unavailable_tasks": {"size": "no sizes"}}))
    assert main(["list", "datasets", "--json"]) == 0
    found = {d["name"]: d for d in json.loads(capsys.readouterr().out)}
    assert found["mineralimage5k 1"]["note"] == "unavailable: size" and "synth-small" in found
    assert main(["list", "backbones"]) == 0 and "resnet50" in capsys.readouterr().out
