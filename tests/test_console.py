"""What ``minbench run`` prints: short, plain progress in a log, no framework noise,
``--quiet`` silent but for results, ``--verbose`` the frameworks' own output."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from minbench import console

REPO = Path(__file__).resolve().parents[1]


def _recipe(folder: Path, epochs: int) -> Path:
    recipe = {
        "name": "tiny-cnn", "task": "fewshot-10",
        "model": {"class_path": "minbench.trainers.classification.ClassificationTrainer",
                  "init_args": {"backbone": "resnet10t", "lr": 0.01,
                                "model_kwargs": {"channels": [8, 8, 16, 16], "stem_width": 8}}},
        "data": {"class_path": "minbench.data.datamodule.MineralDataModule",
                 "init_args": {"image_size": 32, "batch_size": 8, "num_workers": 0, "val_fraction": 0.2}},
        "trainer": {"max_epochs": epochs, "accelerator": "cpu", "devices": 1},
    }
    path = folder / "tiny.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def test_a_run_logged_to_a_file_is_short_and_free_of_framework_noise(tiny_dataset, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO / "benchmark"), "PYTHONWARNINGS": "default"}
    run = subprocess.run([sys.executable, "-m", "minbench.cli", "run", "--task", "fewshot-98", "--data",
                          str(tiny_dataset), "--config", str(_recipe(tmp_path, 12)), "--out", str(tmp_path / "r"),
                          "--no-leaderboard"], capture_output=True, text=True, env=env, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    for noise in ("TPU available", "GPU available", "Tip", "litlogger", "Warning", "deprecated", "Traceback",
                  "Params", "Restoring states", "LeafSpec"):
        assert noise not in run.stdout + run.stderr, noise
    train_lines = [line for line in run.stderr.splitlines() if line.startswith("train fewshot-98")]
    assert 2 <= len(train_lines) <= 11 and train_lines[-1].endswith("done")
    assert "12/12 epochs" in train_lines[-1] and "val/top1" in train_lines[-1]
    assert "top1 *" in run.stdout and "top1 *" not in run.stderr  # results on stdout, notices on stderr
    assert len((run.stdout + run.stderr).splitlines()) < 30


def test_quiet_prints_results_only_and_verbose_brings_lightning_back(tiny_dataset, tmp_path, capsys):
    from minbench.cli import main

    recipe = _recipe(tmp_path, 1)
    args = ["run", "--task", "fewshot-98", "--data", str(tiny_dataset), "--config", str(recipe), "--no-leaderboard"]
    assert main([*args, "--out", str(tmp_path / "q"), "--quiet"]) == 0
    out, err = capsys.readouterr()
    assert err.strip() == "" and "top1 *" in out
    assert main([*args, "--out", str(tmp_path / "v"), "--verbose"]) == 0
    assert "Epoch 0" in capsys.readouterr().out  # Lightning's own progress bar
    assert os.environ.get("MINBENCH_VERBOSITY") is None  # main() leaves no setting behind


def test_a_phase_prints_a_line_per_mark_and_one_at_the_end_in_a_log(capsys, monkeypatch):
    monkeypatch.setattr(console, "is_terminal", lambda: False)
    monkeypatch.delenv("MINBENCH_VERBOSITY", raising=False)
    with console.progress("train x", 80, marks=10, unit="epochs") as phase:
        for epoch in range(80):
            phase.update(epoch + 1, f"loss {1 / (epoch + 1):.2f}")
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 10 and lines[0].startswith("train x: 8/80 epochs") and lines[-1].endswith("done")
    monkeypatch.setenv("MINBENCH_VERBOSITY", console.QUIET)
    with console.progress("train x", 80, marks=10) as phase:
        phase.update(80)
    console.notice("hello")
    assert capsys.readouterr().err == ""


def test_a_quick_phase_with_nothing_to_say_prints_no_line_in_a_log(capsys, monkeypatch):
    monkeypatch.setattr(console, "is_terminal", lambda: False)
    monkeypatch.delenv("MINBENCH_VERBOSITY", raising=False)
    with console.progress("predict x", 3, unit="batches") as phase:
        phase.update(3)
    assert capsys.readouterr().err == ""  # done within QUICK_SECONDS, no fields
    with console.progress("generate x", 3) as phase:
        phase.update(3, "9 images/s -> /data")
    assert capsys.readouterr().err.strip().endswith("9 images/s -> /data · done")
    clock = iter([0.0, console.QUICK_SECONDS + 1])
    monkeypatch.setattr(console.time, "perf_counter", lambda: next(clock, console.QUICK_SECONDS + 1))
    with console.progress("predict y", 3, unit="batches") as phase:
        phase.update(3)
    assert capsys.readouterr().err.startswith("predict y: 3/3 batches")  # a slow one keeps its line
    with pytest.raises(RuntimeError), console.progress("predict z", 3) as phase:
        raise RuntimeError("stop")
    assert "stopped" in capsys.readouterr().err  # a phase that did not finish always says so


@pytest.mark.parametrize("argv", [["--quiet", "list", "cams"], ["list", "cams", "--quiet"]])
def test_quiet_is_accepted_before_and_after_the_command(argv, capsys):
    from minbench.cli import main

    assert main(argv) == 0 and "gradcam" in capsys.readouterr().out
