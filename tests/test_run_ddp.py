"""``minbench run`` under 2-process CPU DDP (gloo) gives the single-process results.

The real DDP runs start two Python processes each (~20 s on an idle 2-core CPU, far more
when it is busy), so they are marked slow; the fast test checks the gathering on the
shards a distributed sampler makes, in one process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import minbench
from minbench.cli import main
from minbench.pipelines import classification
from minbench import dist

TASK = "fewshot-98"


def _recipe(tmp_path: Path, model: dict, batch_size: int) -> Path:
    recipe = {
        "name": "tiny-ddp", "task": "fewshot-10", "model": model,
        # No augmentation (its random draws are per rank) and no validation carve-out; the
        # global batch is the same (per-rank batch x 2 processes).
        "data": {"class_path": "minbench.data.datamodule.MineralDataModule",
                 "init_args": {"image_size": 32, "batch_size": batch_size, "num_workers": 0,
                               "val_fraction": 0.0, "augment": False}},
        "trainer": {"max_epochs": 2, "accelerator": "cpu", "devices": 1, "num_sanity_val_steps": 0},
    }
    path = tmp_path / "ddp.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def _cli(args: list[str]) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(Path(minbench.__file__).parents[1]), env.get("PYTHONPATH", "")])
    # Lightning relaunches this same command line for rank 1.
    return subprocess.run([sys.executable, "-m", "minbench.cli", *args], env=env, capture_output=True,
                          text=True, timeout=600)


def _single_and_ddp(tiny_dataset, tmp_path, model):
    common = ["run", "--task", TASK, "--data", str(tiny_dataset), "--quiet", "--no-leaderboard"]
    single = _cli([*common, "--config", str(_recipe(tmp_path, model, 6)), "--out", str(tmp_path / "single")])
    assert single.returncode == 0, single.stderr[-2000:]
    ddp = _cli([*common, "--config", str(_recipe(tmp_path, model, 3)), "--out", str(tmp_path / "ddp"),
                "--devices", "2", "--strategy", "ddp", "--accelerator", "cpu"])
    assert ddp.returncode == 0, ddp.stderr[-2000:]
    status = json.loads((tmp_path / "ddp" / "seed0" / "status.json").read_text())
    assert status["world_size"] == 2
    return [(tmp_path / name / "seed0") for name in ("single", "ddp")]


@pytest.mark.slow
def test_ddp_fine_tuning_matches_single_process(tiny_dataset, tmp_path):
    # Group norm: batch statistics would differ per rank (SyncBatchNorm needs a GPU).
    model = {"class_path": "minbench.trainers.classification.ClassificationTask",
             "init_args": {"backbone": "resnet10t", "lr": 0.01,
                           "model_kwargs": {"channels": [8, 8, 16, 16], "stem_width": 8,
                                            "norm_layer": "groupnorm1"}}}
    single, ddp = _single_and_ddp(tiny_dataset, tmp_path, model)
    a, b = (json.loads((d / "score.json").read_text())["metrics"] for d in (single, ddp))
    assert a == pytest.approx(b, abs=1e-9)
    assert (single / "predictions.csv").read_bytes() == (ddp / "predictions.csv").read_bytes()
    import torch

    wa, wb = (torch.load(d / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"] for d in (single, ddp))
    assert max((wa[k].float() - wb[k].float()).abs().max().item() for k in wa) < 1e-4


@pytest.mark.slow
def test_ddp_feature_baseline_matches_single_process(tiny_dataset, tmp_path):
    model = {"class_path": "minbench.trainers.classification.FeatureBaselineTask",
             "init_args": {"backbone": "resnet10t", "pretrained": False, "head": "knn", "k": 3,
                           "model_kwargs": {"channels": [8, 8, 16, 16], "stem_width": 8}}}
    single, ddp = _single_and_ddp(tiny_dataset, tmp_path, model)
    assert (single / "predictions.csv").read_bytes() == (ddp / "predictions.csv").read_bytes()


@pytest.mark.slow
def test_ddp_segmentation_chooses_the_single_process_val_level(tiny_dataset, tmp_path):
    """Each rank predicts a shard of the validation part; the level is chosen on all of it."""
    from test_segmentation_pipeline import tiny_checkpoint

    ckpt = tiny_checkpoint(tmp_path / "clf.ckpt")
    common = ["run", "--task", "segmentation", "--data", str(tiny_dataset), "--quiet", "--no-leaderboard",
              "--set", f"model.init_args.classifier={ckpt}", "--set", "model.init_args.threshold=val",
              "--set", "data.init_args.image_size=40"]
    single = _cli([*common, "--out", str(tmp_path / "single")])
    assert single.returncode == 0, single.stderr[-2000:]
    ddp = _cli([*common, "--out", str(tmp_path / "ddp"), "--devices", "2", "--strategy", "ddp",
                "--accelerator", "cpu"])
    assert ddp.returncode == 0, ddp.stderr[-2000:]
    assert json.loads((tmp_path / "ddp" / "seed0" / "status.json").read_text())["world_size"] == 2
    a, b = (json.loads((tmp_path / n / "seed0" / "validation.json").read_text()) for n in ("single", "ddp"))
    assert a["n_images"] > 1 and a == b
    a, b = (json.loads((tmp_path / n / "seed0" / "score.json").read_text())["metrics"] for n in ("single", "ddp"))
    assert a == pytest.approx(b, abs=1e-9)


def test_predictions_of_padded_rank_shards_give_every_test_row_once(tiny_dataset, tmp_path, monkeypatch):
    """What two ranks return (interleaved shards, the last row repeated to even them out)
    is gathered into the single-process submission."""
    recipe = _recipe(tmp_path, {"class_path": "minbench.trainers.classification.ClassificationTask",
                                "init_args": {"backbone": "resnet10t",
                                              "model_kwargs": {"channels": [8, 8, 16, 16], "stem_width": 8}}},
                     6)
    args = ["run", "--task", TASK, "--data", str(tiny_dataset), "--config", str(recipe), "--quiet",
            "--no-leaderboard", "--max-epochs", "1"]
    assert main([*args, "--out", str(tmp_path / "single")]) == 0

    def as_two_ranks(items):
        items = list(items)
        padded = items + items[: len(items) % 2]
        return padded[0::2][::-1] + padded[1::2]  # rank 0's rows, then rank 1's, in no useful order

    monkeypatch.setattr(dist, "gather_objects", as_two_ranks)
    assert main([*args, "--out", str(tmp_path / "sharded")]) == 0
    single, sharded = ((tmp_path / n / "seed0" / "predictions.csv").read_bytes() for n in ("single", "sharded"))
    assert single == sharded
    assert classification.gather_predictions([]) == []
