"""``minbench run`` for the few-shot tasks, end to end on the tiny embedded dataset with a
tiny CNN at 32 px: the run folder, the submission, scoring, seeds, resume, refusals."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest
import yaml

from minbench.cli import main
from minbench.pipelines import classification
from minbench.pipelines.run_folder import RunFolder, summarise

TASK = "fewshot-98"  # tiny: 8 classes, 18 train and 9 test images


def tiny_recipe(folder: Path, *, model: dict | None = None, epochs: int = 2, **data) -> Path:
    recipe = {
        "name": "tiny-cnn",
        "description": "test recipe",
        "task": "fewshot-10",
        "model": model or {"class_path": "minbench.trainers.classification.ClassificationTask",
                           "init_args": {"backbone": "resnet10t", "model_kwargs": {"channels": [8, 8, 16, 16],
                                                                                   "stem_width": 8},
                                         "lr": 0.01}},
        "data": {"class_path": "minbench.data.datamodule.MineralDataModule",
                 "init_args": {"image_size": 32, "batch_size": 8, "num_workers": 0, "val_fraction": 0.2,
                               **data}},
        "trainer": {"max_epochs": epochs, "accelerator": "cpu", "devices": 1},
    }
    path = folder / "tiny.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def run(tiny_dataset, recipe, out, *extra) -> int:
    return main(["run", "--task", TASK, "--data", str(tiny_dataset), "--config", str(recipe),
                 "--out", str(out), "--quiet", *extra])


@pytest.fixture
def recipe(tmp_path):
    return tiny_recipe(tmp_path)


def test_run_writes_submission_score_config_plots_and_leaderboard(tiny_dataset, recipe, tmp_path):
    out = tmp_path / "run"
    assert run(tiny_dataset, recipe, out) == 0
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert config["task"] == TASK and config["seeds"] == [0]
    assert config["dataset"]["fingerprint"].startswith("sha256:")
    manifest = pd.read_parquet(tiny_dataset / "manifest.parquet")
    test_rows = manifest[manifest["fewshot_98"] == "test"]
    classes = set(manifest.loc[manifest["fewshot_98"] == "train", "species"])
    sub = pd.read_csv(out / "seed0" / "predictions.csv")
    k = min(10, len(classes))
    assert list(sub.columns) == ["sample_id", *[f"pred_{i}" for i in range(1, k + 1)]]
    assert sorted(sub["sample_id"]) == sorted(test_rows["sample_id"])  # every test row, once
    ranks = sub.drop(columns="sample_id").to_numpy()
    assert set(ranks.ravel()) <= classes and all(len(set(r)) == k for r in ranks)
    score = json.loads((out / "seed0" / "score.json").read_text())
    # the score is the scorer's own reading of the written file
    top1 = (sub.set_index("sample_id")["pred_1"] == test_rows.set_index("sample_id")["species"]).mean()
    assert score["metrics"]["top1"] == pytest.approx(top1)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["metrics"]["top1"]["mean"] == pytest.approx(top1)
    assert summary["stats"]["train_images_per_s"]["mean"] > 0
    for name in ("confused_pairs", "per_class_accuracy", "training_curves"):
        assert (out / "seed0" / "plots" / f"{name}.png").stat().st_size > 1000
    assert (out / "seed0" / "checkpoints" / "last.ckpt").is_file()
    status = json.loads((out / "seed0" / "status.json").read_text())
    board = json.loads(Path(status["leaderboard"]).read_text())
    entry = board["entries"][-1]
    assert entry["source"] == "run" and entry["seeds"][0]["seed"] == 0 and entry["name"] == "tiny-cnn"
    assert entry["modified"] == [] and entry["samples"]["seeds"] == [0] and board["floors"]


def test_finished_run_is_refused_unless_overwrite(tiny_dataset, recipe, tmp_path, capsys):
    out = tmp_path / "run"
    assert run(tiny_dataset, recipe, out, "--max-epochs", "1", "--no-leaderboard") == 0
    before = (out / "seed0" / "predictions.csv").read_bytes(), (out / "summary.json").read_bytes()
    capsys.readouterr()
    assert run(tiny_dataset, recipe, out, "--max-epochs", "1", "--no-leaderboard") == 2
    assert "finished run" in capsys.readouterr().err
    assert ((out / "seed0" / "predictions.csv").read_bytes(), (out / "summary.json").read_bytes()) == before
    assert run(tiny_dataset, recipe, out, "--max-epochs", "1", "--no-leaderboard", "--overwrite") == 0


def test_same_seed_twice_gives_identical_predictions(tiny_dataset, recipe, tmp_path):
    for name in ("a", "b"):
        assert run(tiny_dataset, recipe, tmp_path / name, "--seed", "5", "--no-leaderboard") == 0
    a, b = (json.loads((tmp_path / n / "seed5" / "score.json").read_text())["metrics"] for n in "ab")
    assert a == b
    assert (tmp_path / "a/seed5/predictions.csv").read_bytes() == (tmp_path / "b/seed5/predictions.csv").read_bytes()


def test_several_seeds_give_mean_and_std(tiny_dataset, recipe, tmp_path):
    out = tmp_path / "run"
    assert run(tiny_dataset, recipe, out, "--seeds", "0", "1", "--max-epochs", "1", "--no-leaderboard") == 0
    summary = json.loads((out / "summary.json").read_text())
    top1 = summary["metrics"]["top1"]
    per_seed = [summary["per_seed"][s]["top1"] for s in ("0", "1")]
    assert top1["n"] == 2 and top1["values"] == per_seed
    assert top1["mean"] == pytest.approx(sum(per_seed) / 2)
    assert top1["std"] == pytest.approx(abs(per_seed[0] - per_seed[1]) / 2 ** 0.5)


def test_summarise_skips_non_numbers():
    got = summarise([{"a": 1.0, "b": "x"}, {"a": 3.0, "c": float("nan")}])
    assert got == {"a": {"mean": 2.0, "std": pytest.approx(2 ** 0.5), "n": 2, "values": [1.0, 3.0]}}


def test_interrupted_run_resumes_from_its_last_checkpoint(tiny_dataset, recipe, tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(classification, "write_submission", interrupted)
        assert run(tiny_dataset, recipe, out, "--no-leaderboard") == 130
    folder = RunFolder(out)
    assert folder.seed_status(0)["state"] == "running" and not folder.is_finished()
    capsys.readouterr()
    assert run(tiny_dataset, recipe, out, "--no-leaderboard") == 2  # neither --resume nor --overwrite
    assert "--resume" in capsys.readouterr().err
    # a run stored before the *Trainer -> *Task rename still resumes (the loader's alias map)
    stored = (out / "config.yaml").read_text()
    (out / "config.yaml").write_text(stored.replace("ClassificationTask", "ClassificationTrainer"))
    # continue to 3 epochs: only the third is trained now
    assert main(["run", "--out", str(out), "--resume", "--max-epochs", "3", "--quiet", "--no-leaderboard"]) == 0
    status = folder.seed_status(0)
    assert status["state"] == "finished" and status["stats"]["epochs"] == 3
    assert len(status["train_images_per_s_per_epoch"]) == 1
    assert folder.is_finished()
    # the run folder's marker is no part of the method's config (a resumed run's entry is the recipe's)
    assert "minbench_run" not in folder.read_config() and "minbench_run" in (out / "config.yaml").read_text()


def test_overwrite_never_empties_a_folder_that_is_not_a_run(tiny_dataset, recipe, tmp_path, capsys):
    out = tmp_path / "precious"
    out.mkdir()
    (out / "thesis.tex").write_text("keep me")
    assert run(tiny_dataset, recipe, out, "--overwrite") == 2
    assert "not a minbench run folder" in capsys.readouterr().err
    assert (out / "thesis.tex").read_text() == "keep me"


@pytest.mark.parametrize("override, message", [
    ("model.init_args.backbone=resnet5O", "close timm names: .*resnet50"),
    ("model.init_args.drop=0.1", "takes no argument 'drop'"),
    ("trainer.max_epoch=3", "did you mean .max_epochs."),
])
def test_bad_recipe_values_are_one_line_errors_and_leave_no_run(tiny_dataset, recipe, tmp_path, capsys,
                                                                  override, message):
    out = tmp_path / "run"
    assert run(tiny_dataset, recipe, out, "--set", override) == 2
    err = capsys.readouterr().err.strip()  # (the data module's cache progress may leave a blank line)
    assert err.count("\n") == 0 and err.startswith("minbench: error:")
    assert re.search(message, err)
    assert not out.exists()


@pytest.mark.parametrize("content, message", [
    (b"definitely not torch", "not a weights file or checkpoint"),
    (None, "no such file"),
])
def test_bad_weights_are_refused(tiny_dataset, recipe, tmp_path, capsys, content, message):
    weights = tmp_path / "w.pth"
    if content is not None:
        weights.write_bytes(content)
    assert run(tiny_dataset, recipe, tmp_path / "run", "--weights", str(weights)) == 2
    assert message in capsys.readouterr().err


def test_a_class_without_training_images_is_refused(tiny_dataset, recipe, tmp_path, capsys):
    from minbench.data import manifest

    df = manifest.read_manifest(tiny_dataset)
    species = df.loc[df["fewshot_98"] == "test", "species"].iloc[0]
    df.loc[(df["species"] == species) & (df["fewshot_98"] == "train"), "fewshot_98"] = ""
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "images").symlink_to(tiny_dataset / "images")
    manifest.write_dataset(broken, df, name="synth", version="test", source="synth")
    assert run(broken, recipe, tmp_path / "run") == 2
    assert species in capsys.readouterr().err


def test_default_recipe_and_unknown_kind_recipe(tmp_path, capsys):
    from minbench.pipelines.resolve import RunRequest, resolve_config

    config, card = resolve_config(RunRequest(task="fewshot-360"))
    assert config["name"] == "fewshot-small-cnn" and config["task"] == "fewshot-360" and card.kind == "classification"
    assert main(["run", "--task", "size", "--config", "fewshot-small-cnn", "--out", str(tmp_path / "x")]) == 2
    assert "cannot run --task size" in capsys.readouterr().err


def test_feature_baseline_runs_training_free_with_wandb_offline(tiny_dataset, tmp_path):
    model = {"class_path": "minbench.trainers.classification.FeatureBaselineTask",
             "init_args": {"backbone": "resnet10t", "pretrained": False, "head": "knn", "k": 3,
                           "model_kwargs": {"channels": [8, 8, 16, 16], "stem_width": 8}}}
    recipe = tiny_recipe(tmp_path, model=model, epochs=1, augment=False)
    out = tmp_path / "run"
    assert run(tiny_dataset, recipe, out, "--no-leaderboard", "--logger", "wandb") == 0
    status = RunFolder(out).seed_status(0)
    assert status["stats"]["epochs"] == 1 and 0 <= status["metrics"]["top1"] <= 1
    # wandb (offline in tests) beside the CSV log
    assert list((out / "seed0" / "wandb").glob("offline-run-*")) and list(out.glob("seed0/logs/*/metrics.csv"))


def test_recipe_init_args_may_build_objects(tiny_dataset):
    from minbench.recipes import instantiate

    section = {"class_path": "minbench.data.datamodule.MineralDataModule",
               "init_args": {"image_size": 32, "augment_config": {
                   "class_path": "minbench.data.augment.AugmentConfig", "init_args": {"grayscale": 0.0}}}}
    dm = instantiate(section, "data", data_dir=tiny_dataset, task=TASK)
    assert dm.augment_config.grayscale == 0.0 and dm.augment_config.hflip == 0.5


def test_shipped_recipes_are_well_formed():
    from minbench.recipes import import_class, load_recipe, shipped_recipes
    from minbench.trainers.base import BaseTask

    recipes = shipped_recipes()
    for name in ("fewshot-small-cnn", "resnet50-224", "resnet50-384", "vit-b16-224", "prototype-resnet50",
                 "knn-resnet50", "colour-logistic"):
        config = load_recipe(recipes[name])
        assert config["name"] == name and config["task"].startswith("fewshot")
        assert issubclass(import_class(config["model"]["class_path"], "model"), BaseTask)
    default = load_recipe(recipes["fewshot-small-cnn"])
    assert default["model"]["init_args"]["pretrained"] is False  # the embedded default needs no hub


def test_renamed_class_paths_resolve_to_the_task_modules():
    from minbench.recipes import CLASS_PATH_ALIASES, import_class

    for old, new in CLASS_PATH_ALIASES.items():
        assert import_class(old, "model") is import_class(new, "model")
        assert new.rpartition(".")[2].endswith("Task")
