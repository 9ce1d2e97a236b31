"""``minbench run --task zeroshot`` end to end on the tiny embedded dataset, and bad input."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch
import yaml

from minbench.cli import main

TINY_RECIPE = {
    "name": "zeroshot-tiny",
    "task": "zeroshot",
    "seeds": [0],
    "model": {"class_path": "minbench.trainers.zeroshot.ContrastiveZeroShot",
              "init_args": {"backbone": "test_resnet", "text_encoder": "hash", "embed_dim": 32, "lr": 0.001}},
    "data": {"class_path": "minbench.data.datamodule.MineralDataModule",
             "init_args": {"image_size": 32, "batch_size": 16, "num_workers": 0, "val_fraction": 0.1}},
    "trainer": {"max_epochs": 1, "accelerator": "cpu", "devices": 1},
}


def _write(path, obj):
    path.write_text(yaml.safe_dump(obj))
    return path


def _run(data, recipe, out, *extra):
    return main(["run", "--task", "zeroshot", "--data", str(data), "--config", str(recipe), "--out", str(out),
                 "--quiet", *extra])


def test_run_trains_predicts_scores_and_adds_a_leaderboard_entry(tiny_dataset, tmp_path, leaderboards):
    recipe = _write(tmp_path / "zeroshot-tiny.yaml", TINY_RECIPE)
    out = tmp_path / "run"
    assert _run(tiny_dataset, recipe, out) == 0
    frame = pd.read_parquet(tiny_dataset / "manifest.parquet")
    zs = frame[frame["zeroshot"]]
    sub = pd.read_csv(out / "seed0" / "predictions.csv", keep_default_na=False)
    k = min(10, zs["species"].nunique())
    assert list(sub.columns) == ["sample_id"] + [f"pred_{i}" for i in range(1, k + 1)]
    assert sorted(sub["sample_id"]) == sorted(zs["sample_id"])
    preds = set(sub.drop(columns="sample_id").to_numpy().ravel())
    assert preds == set(zs["species"])  # only unseen candidates, and k = all of them here
    score = json.loads((out / "seed0" / "score.json").read_text())
    assert 0.0 <= score["metrics"]["top1"] <= score["metrics"]["top5"] <= 1.0
    gzsl = json.loads((out / "seed0" / "gzsl.json").read_text())
    for key in ("seen", "unseen", "h"):
        assert 0.0 <= gzsl[key] <= 1.0
    summary = json.loads((out / "summary.json").read_text())
    assert "top1" in summary["metrics"] and "gzsl_h" in summary["metrics"]
    boards = list(leaderboards.rglob("*.json"))
    assert boards and "zeroshot-tiny" in boards[0].read_text()


def test_clip_recipe_with_local_weights_runs(tiny_dataset, tmp_path, leaderboards):
    from minbench.models.clip import load_clip
    from test_clip import TINY

    arch = tmp_path / "tiny-clip.json"
    arch.write_text(json.dumps(TINY))
    weights = tmp_path / "tiny-clip.pt"
    torch.manual_seed(0)
    torch.save(load_clip(str(arch), allow_random=True).model.state_dict(), weights)
    recipe = _write(tmp_path / "clip-tiny.yaml", {
        **TINY_RECIPE, "name": "clip-tiny",
        "model": {"class_path": "minbench.trainers.zeroshot.ClipZeroShot",
                  "init_args": {"arch": str(arch), "text_source": "both"}}})
    out = tmp_path / "clip-run"
    assert _run(tiny_dataset, recipe, out, "--weights", str(weights), "--no-leaderboard") == 0
    sub = pd.read_csv(out / "seed0" / "predictions.csv", keep_default_na=False)
    assert len(sub) == int(pd.read_parquet(tiny_dataset / "manifest.parquet")["zeroshot"].sum())
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert config["model"]["init_args"]["weights"] == str(weights.resolve())


@pytest.mark.parametrize("setup, message", [
    (lambda tmp: ("classnames_file", _text(tmp / "empty.txt", "# none\n")), "class list is empty"),
    (lambda tmp: ("classnames_file", _text(tmp / "dup.txt", "a\nb\na\n")), "'a' appears more than once"),
    (lambda tmp: ("templates", ["a photo of a mineral."]), "no '{}' placeholder"),
    (lambda tmp: ("templates_file", _text(tmp / "t.txt", "{} and {}\n")), "exactly one"),
])
def test_bad_input_gives_one_line_and_nonzero_exit(tiny_dataset, tmp_path, capsys, setup, message):
    key, value = setup(tmp_path)
    recipe = json.loads(json.dumps(TINY_RECIPE))
    recipe["model"]["init_args"][key] = value
    path = _write(tmp_path / "bad.yaml", recipe)
    rc = _run(tiny_dataset, path, tmp_path / "out", "--no-leaderboard")
    err = capsys.readouterr().err
    assert rc != 0
    assert message in err and "Traceback" not in err


def test_checkpoint_for_another_architecture_is_refused(tiny_dataset, tmp_path, capsys):
    from test_clip import TINY

    arch = tmp_path / "tiny-clip.json"
    arch.write_text(json.dumps(TINY))
    wrong = tmp_path / "other.pt"
    torch.save({"visual.conv1.weight": torch.zeros(4, 3, 8, 8)}, wrong)
    recipe = _write(tmp_path / "clip.yaml", {
        **TINY_RECIPE, "model": {"class_path": "minbench.trainers.zeroshot.ClipZeroShot",
                                 "init_args": {"arch": str(arch)}}})
    rc = _run(tiny_dataset, recipe, tmp_path / "out", "--weights", str(wrong), "--no-leaderboard")
    err = capsys.readouterr().err
    assert rc != 0 and "checkpoint for another architecture" in err and "Traceback" not in err


def _text(path, text):
    path.write_text(text)
    return str(path)


def test_preflight_fails_at_once_without_clip_weights(tmp_path, monkeypatch):
    from minbench.errors import UserError
    from minbench.pipelines.zeroshot import preflight

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    clip_cfg = {"task": "zeroshot", "model": {"class_path": "minbench.trainers.zeroshot.ClipZeroShot",
                                              "init_args": {"arch": "ViT-B-32", "pretrained": "laion2b_s34b_b79k"}}}
    with pytest.raises(UserError, match="hub is not reachable.*--weights PATH"):
        preflight(clip_cfg)
    clip_cfg["model"]["init_args"]["weights"] = str(tmp_path / "missing.bin")
    with pytest.raises(UserError, match="no such checkpoint file.*--weights PATH"):
        preflight(clip_cfg)
    bad = {"task": "zeroshot", "model": {"class_path": "x", "init_args": {"templates": ["no placeholder"]}}}
    with pytest.raises(UserError, match="no '{}' placeholder"):
        preflight(bad)
    preflight(TINY_RECIPE)  # a sound recipe passes


@pytest.fixture
def all_zeroshot(tiny_dataset, tmp_path):
    """The release's shape: the zero-shot set covers every species (nothing to train on)."""
    import shutil

    from minbench.data import manifest

    folder = tmp_path / "all-zs"
    shutil.copytree(tiny_dataset, folder)
    frame = manifest.read_manifest(folder)
    frame["zeroshot"] = True
    manifest.write_dataset(folder, frame, name="synth-allzs", version="1", source="synth")
    return folder


def test_all_zeroshot_dataset_runs_clip_and_refuses_training(all_zeroshot, tmp_path, capsys):
    from minbench.models.clip import load_clip
    from test_clip import TINY

    rc = _run(all_zeroshot, _write(tmp_path / "r.yaml", TINY_RECIPE), tmp_path / "out", "--no-leaderboard")
    assert rc != 0 and "no training rows outside the zero-shot classes" in capsys.readouterr().err
    arch = tmp_path / "tiny-clip.json"
    arch.write_text(json.dumps(TINY))
    weights = tmp_path / "w.pt"
    torch.save(load_clip(str(arch), allow_random=True).model.state_dict(), weights)
    recipe = _write(tmp_path / "clip.yaml", {
        **TINY_RECIPE, "model": {"class_path": "minbench.trainers.zeroshot.ClipZeroShot",
                                 "init_args": {"arch": str(arch)}}})
    out = tmp_path / "clip-out"
    assert _run(all_zeroshot, recipe, out, "--weights", str(weights), "--no-leaderboard") == 0
    sub = pd.read_csv(out / "seed0" / "predictions.csv", keep_default_na=False)
    assert len(sub) == len(pd.read_parquet(all_zeroshot / "manifest.parquet"))
    assert not (out / "seed0" / "gzsl.json").exists()  # no seen classes: no GZSL
