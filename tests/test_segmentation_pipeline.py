"""``minbench run --task segmentation`` end to end on the tiny embedded dataset."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from minbench.cards import get_card
from minbench.errors import UserError


def tiny_checkpoint(path: Path, classes=("a", "b", "c")) -> Path:
    """A ClassificationTask checkpoint with random weights and tiny widths."""
    from minbench.trainers.classification import ClassificationTask

    torch.manual_seed(0)
    clf = ClassificationTask(task="fewshot-10", backbone="resnet10t", num_classes=len(classes),
                                classes=list(classes), model_kwargs={"channels": [8, 16, 32, 64]})
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": clf.state_dict(), "hyper_parameters": dict(clf.hparams)}, path)
    return path


def fake_fewshot_run(runs: Path, data_dir: Path, *, name="fewshot-small-cnn", image_size=48,
                     fingerprint=None) -> Path:
    """A finished few-shot run folder as `minbench run --task fewshot-10` leaves it."""
    from minbench.data.manifest import read_info

    root = runs / "fewshot-10" / name
    ckpt = tiny_checkpoint(root / "seed0" / "checkpoints" / "best.ckpt")
    config = {"name": name, "task": "fewshot-10",
              "model": {"class_path": "minbench.trainers.classification.ClassificationTask"},
              "data": {"init_args": {"image_size": image_size}},
              "dataset": {"fingerprint": fingerprint or read_info(data_dir).fingerprint}}
    (root / "config.yaml").write_text(yaml.safe_dump(config))
    (root / "seed0" / "status.json").write_text(json.dumps({"state": "finished", "checkpoint": str(ckpt)}))
    return ckpt


def test_run_finds_a_fewshot_run_and_writes_everything(tiny_dataset, tmp_path, monkeypatch, leaderboards, capsys):
    from minbench.cli import main
    from minbench.data.manifest import read_manifest

    monkeypatch.chdir(tmp_path)
    ckpt = fake_fewshot_run(tmp_path / "runs", tiny_dataset)
    fake_fewshot_run(tmp_path / "runs", tiny_dataset, name="other-dataset", fingerprint="sha256:0")
    out = tmp_path / "segrun"
    assert main(["run", "--task", "segmentation", "--data", str(tiny_dataset), "--out", str(out), "--quiet"]) == 0

    seed = out / "seed0"
    status = json.loads((seed / "status.json").read_text())
    assert status["state"] == "finished"
    identity = status["classifier"].pop("identity")
    assert status["classifier"] == {"checkpoint": str(ckpt), "source": "run", "recipe": "fewshot-small-cnn",
                                    "task": "fewshot-10", "num_classes": 3}
    assert identity["recipe"] == "fewshot-small-cnn" and len(identity["config_hash"]) == 12
    # The classifier's training size (48 px) from its run config; the deepest stage with
    # >= 7 x 7 cells there is layer1 (12 x 12 at 48 px).
    assert status["cam"]["image_size"] == 48 and status["cam"]["target_layers"] == ["layer1"]
    # read at cam_scale 2 (96 px), that layer's map has 24 x 24 cells
    assert status["cam"]["input_size"] == 96 and status["cam"]["cells"] == [24, 24]
    assert status["cam"]["tta"] == "none"
    manifest, card = read_manifest(tiny_dataset), get_card("segmentation")
    rows = card.rows(manifest, "test")
    # the validation part: its maps chose the default recipe's val level, its figures are the scorer's,
    # in validation.json; none of its photos is in the submission
    validation = json.loads((seed / "validation.json").read_text())
    val_ids = set(manifest["sample_id"].iloc[card.positions(manifest, "validation")])
    assert set(validation["sample_ids"]) == val_ids and validation["n_images"] == len(val_ids) > 0
    assert set(validation["metrics"]) == {"miou", "dice", "pixel_accuracy", "pxap", "mean_ap"}
    assert status["validation"]["metrics"] == pytest.approx(validation["metrics"])
    assert not any((seed / "predictions" / f"{sid}.png").exists() for sid in val_ids)
    for r in rows.itertuples():  # the submission: one PNG per test image, at the image's size
        with Image.open(seed / "predictions" / f"{r.sample_id}.png") as im:
            assert im.size == (r.width, r.height) and im.mode == "L"
        # beside each mask its score map: the CAM upsampled to the image, 16-bit; and every
        # reference baseline's continuous score
        for folder in [seed / "predictions"] + [seed / "baselines" / b for b in ("centre", "colour", "border", "blob")]:
            with Image.open(folder / "maps" / f"{r.sample_id}.png") as im:
                assert im.size == (r.width, r.height) and im.mode == "I;16"
    score = json.loads((seed / "score.json").read_text())
    assert set(score["metrics"]) == {"miou", "dice", "pixel_accuracy", "pxap", "mean_ap"}
    assert 0 < score["metrics"]["pxap"] <= 1 and 0 < score["metrics"]["mean_ap"] <= 1
    assert status["metrics"]["miou"] == pytest.approx(score["metrics"]["miou"])
    # Every reference baseline is scored beside the CAM, and the verdict compares them.
    assert set(status["baselines"]) == {"centre", "colour", "border", "blob"}
    for name in ("centre", "colour", "border", "blob"):
        assert 0.0 <= status["metrics"][f"{name}/miou"] <= 1.0
        assert (seed / "baselines" / f"{name}.score.json").is_file()
    assert len(status["verdict"]) == 4
    for line, name in zip(status["verdict"], ("centre", "colour", "border", "blob")):
        ours, theirs = status["metrics"]["miou"], status["metrics"][f"{name}/miou"]
        assert ("does NOT beat" in line) == (ours <= theirs)
    gallery = np.asarray(Image.open(seed / "plots" / "gallery.png").convert("L"))
    assert gallery.shape[0] > 300 and gallery.std() > 10  # drawn, not blank
    summary = json.loads((out / "summary.json").read_text())
    assert "miou" in summary["metrics"] and "border/miou" in summary["metrics"]
    board = json.loads(next(leaderboards.glob("segmentation--*.json")).read_text())
    names = {e["name"] for e in board["entries"]}
    assert names == {"scorecam+grabcut/fewshot-small-cnn", "baseline/centre", "baseline/colour", "baseline/border",
                     "baseline/blob"}
    assert {e["role"] for e in board["entries"] if e["name"].startswith("baseline/")} == {"reference"}
    assert "pxap" in [m["name"] for m in board["metrics"]]
    assert all(0 < e["metrics"]["pxap"] <= 1 for e in board["entries"])
    capsys.readouterr()
    assert main(["leaderboard", "--task", "segmentation", "--format", "markdown"]) == 0
    shown = capsys.readouterr().out.splitlines()
    header = next(line for line in shown if line.startswith("| # |")).split(" | ")
    row = next(line for line in shown if "scorecam+grabcut/fewshot-small-cnn" in line).split(" | ")
    assert row[header.index("pxap")].endswith("%")


def test_seeds_of_different_classifiers_never_share_an_entry(tiny_dataset, tmp_path, monkeypatch, leaderboards):
    """The recipe leaves ``classifier`` open (null); the classifier it resolves to is part of
    the entry's identity, so a retrained or edited classifier starts a new entry."""
    from minbench.cli import main

    monkeypatch.chdir(tmp_path)
    fake_fewshot_run(tmp_path / "runs", tiny_dataset)

    def run(seed):
        assert main(["run", "--task", "segmentation", "--data", str(tiny_dataset), "--out", str(tmp_path / "seg"),
                     "--quiet", "--overwrite", "--seed", str(seed)]) == 0
        board = json.loads(next(leaderboards.glob("segmentation--*.json")).read_text())
        entry = next(e for e in board["entries"] if e["name"].startswith("scorecam+grabcut/"))
        return entry["name"], [r["seed"] for r in entry["seeds"]], entry

    assert run(0)[:2] == ("scorecam+grabcut/fewshot-small-cnn", [0])
    name, seeds, entry = run(1)
    assert (name, seeds) == ("scorecam+grabcut/fewshot-small-cnn", [0, 1])   # same classifier: seeds join
    assert entry["modified"] == [] and entry["config"]["resolved"]["classifier"]["recipe"] == "fewshot-small-cnn"
    config_path = tmp_path / "runs" / "fewshot-10" / "fewshot-small-cnn" / "config.yaml"
    config = yaml.safe_load(config_path.read_text())
    config["data"]["init_args"]["image_size"] = 40                   # another classifier method
    config_path.write_text(yaml.safe_dump(config))
    assert run(2)[:2] == ("scorecam+grabcut/fewshot-small-cnn", [2])         # a new entry, not a third seed


def test_a_cached_default_classifier_of_another_recipe_config_is_not_reused(tiny_dataset, tmp_path, monkeypatch):
    from minbench.data.manifest import read_info
    from minbench.pipelines import runner, segmentation_classifier as sc
    from minbench.pipelines.context import SeedContext

    monkeypatch.setenv("MINBENCH_HOME", str(tmp_path / "home"))
    fingerprint = read_info(tiny_dataset).fingerprint
    ctx = SeedContext.__new__(SeedContext)
    ctx.config, ctx.seed, ctx.data_dir, ctx.quiet = {"model": {}}, 0, tiny_dataset, True
    config, chash = sc.default_classifier_config(ctx)
    ctx.config["classifier_weights"] = "backbone.pt"
    assert sc.default_classifier_config(ctx)[1] != chash   # --weights: another classifier
    del ctx.config["classifier_weights"]

    class Trained(Exception):
        pass

    def trains(*args, **kwargs):
        raise Trained

    monkeypatch.setattr(runner, "run_recipe", trains)
    root = sc._cached_dir(fingerprint, 0, chash)
    ckpt = tiny_checkpoint(root / "best.ckpt")
    meta = {"checkpoint": str(ckpt), "fingerprint": fingerprint, "recipe": sc.CLASSIFIER_RECIPE,
            "task": sc.CLASSIFIER_TASK, "image_size": 64, "seed": 0}
    (root / sc.CLASSIFIER_INFO).write_text(json.dumps({**meta, "config_hash": "0" * 12}))
    with pytest.raises(Trained):  # trained by an older or edited recipe: trained again
        sc.train_default_classifier(ctx, fingerprint)
    root.mkdir(parents=True, exist_ok=True)
    ckpt = tiny_checkpoint(root / "best.ckpt")
    (root / sc.CLASSIFIER_INFO).write_text(json.dumps({**meta, "config_hash": chash}))
    ref = sc.train_default_classifier(ctx, fingerprint)
    assert (ref.source, ref.checkpoint, ref.identity) == ("cached", ckpt, {"recipe": sc.CLASSIFIER_RECIPE,
                                                                           "config_hash": chash})


def test_given_classifier_and_options(tiny_dataset, tmp_path, monkeypatch, leaderboards):
    from minbench.cli import main

    monkeypatch.chdir(tmp_path)
    ckpt = tiny_checkpoint(tmp_path / "clf.ckpt")
    out = tmp_path / "segrun"
    argv = ["run", "--task", "segmentation", "--data", str(tiny_dataset), "--out", str(out), "--quiet",
            "--no-leaderboard", "--set", f"model.init_args.classifier={ckpt}",
            "--set", "model.init_args.cam=gradcam++", "--set", "model.init_args.threshold=percentile",
            "--set", "model.init_args.target_layer=layer3", "--set", "data.init_args.image_size=40"]
    assert main(argv) == 0
    status = json.loads((out / "seed0" / "status.json").read_text())
    assert status["classifier"]["source"] == "given"
    assert status["cam"] == {"method": "gradcam++", "target": "predicted", "top_k": 3, "target_layers": ["layer3"],
                             "threshold": "percentile", "threshold_value": 70.0, "upsample": "bilinear",
                             "refine": "grabcut", "refine_args": {"sure_fg": 0.9, "sure_bg": 0.2, "iterations": 6},
                             "image_size": 40, "input_size": 80, "cells": [5, 5],
                             "tta": "none"}
    assert not leaderboards.exists()


def test_the_val_level_is_chosen_on_the_whole_validation_part_of_every_rank(tiny_dataset, tmp_path, monkeypatch):
    """Under DDP each rank predicts a shard of the validation part (padded with repeats): the
    shards are gathered, so the level and validation.json are the single process's."""
    from minbench import dist
    from minbench.cli import main

    monkeypatch.chdir(tmp_path)
    ckpt = tiny_checkpoint(tmp_path / "clf.ckpt")
    argv = ["run", "--task", "segmentation", "--data", str(tiny_dataset), "--quiet", "--no-leaderboard",
            "--set", f"model.init_args.classifier={ckpt}", "--set", "model.init_args.threshold=val",
            "--set", "data.init_args.image_size=40"]
    assert main([*argv, "--out", str(tmp_path / "single")]) == 0
    gathered = []

    def as_two_ranks(items):
        items = list(items)
        gathered.append(len(items))
        padded = items + items[: len(items) % 2]
        return padded[1::2] + padded[0::2][::-1]  # rank 1's shard, then rank 0's, reversed

    monkeypatch.setattr(dist, "gather_objects", as_two_ranks)
    assert main([*argv, "--out", str(tmp_path / "sharded")]) == 0
    assert gathered and gathered[0] > 1
    single, sharded = (json.loads((tmp_path / n / "seed0" / "validation.json").read_text())
                       for n in ("single", "sharded"))
    assert single["threshold_value"] is not None
    assert single == sharded


def test_bad_classifier_is_one_line(tiny_dataset, tmp_path, monkeypatch, capsys, leaderboards):
    from minbench.cli import main

    monkeypatch.chdir(tmp_path)
    junk = tmp_path / "junk.ckpt"
    junk.write_text("hello")
    for value, message in ((junk, "junk.ckpt: not a loadable checkpoint"),
                           (tmp_path / "nope.ckpt", "nope.ckpt: no such checkpoint file")):
        rc = main(["run", "--task", "segmentation", "--data", str(tiny_dataset), "--out", str(tmp_path / "r"),
                   "--quiet", "--overwrite", "--set", f"model.init_args.classifier={value}"])
        err = capsys.readouterr().err
        assert rc == 2 and message in err and "Traceback" not in err


def test_find_run_checkpoint_prefers_the_default_recipe(tmp_path, tiny_dataset):
    from minbench.data.manifest import read_info
    from minbench.pipelines.segmentation_classifier import find_run_checkpoint

    fp = read_info(tiny_dataset).fingerprint
    assert find_run_checkpoint(fp, tmp_path / "runs") is None
    other = fake_fewshot_run(tmp_path / "runs", tiny_dataset, name="resnet50-224")
    assert find_run_checkpoint(fp, tmp_path / "runs") == other
    default = fake_fewshot_run(tmp_path / "runs", tiny_dataset)
    assert find_run_checkpoint(fp, tmp_path / "runs") == default
    assert find_run_checkpoint("sha256:else", tmp_path / "runs") is None


def test_compare_says_when_the_cam_loses_by_the_paired_interval():
    """A CAM ahead of a baseline on every image beats it; one ahead on the mean but not
    clearly (the paired interval across zero) does NOT; one behind does NOT."""
    from minbench.pipelines.segmentation_baselines import compare
    from minbench.scoring import tables as T

    truth = np.zeros((8, 8), bool)
    truth[2:6, 2:6] = True

    def table(hits):  # per image: the true mask (IoU 1) or a quarter of it
        quarter = np.zeros_like(truth)
        quarter[2:4, 2:4] = True
        return T.segmentation_table((truth if h else quarter, truth) for h in hits)

    cam = table([1, 1, 1, 1, 0, 0, 0, 0, 1, 1])
    baselines = {"colour": {"metrics": {"miou": 1.0}, "table": table([1] * 10)},
                 "centre": {"metrics": {"miou": 0.25}, "table": table([0] * 10)},
                 "border": {"metrics": {"miou": 0.625}, "table": table([0, 1, 1, 1, 0, 0, 0, 1, 1, 0])}}
    lines = compare("gradcam", cam, baselines, get_card("segmentation"))
    assert lines[0].startswith("gradcam does NOT beat colour: 0.700 vs 1.000, -0.300 [")
    assert lines[1].startswith("gradcam beats centre: 0.700 vs 0.250, +0.450 [+")
    assert lines[2].startswith("gradcam does NOT beat border: 0.700 vs 0.625, +0.075 [-")
    assert all(len(line) <= 80 for line in lines)  # one terminal line each


def test_unreadable_images_get_empty_masks(tmp_path):
    import pandas as pd

    from minbench.pipelines.segmentation import fill_missing_masks
    from minbench.trainers.segmentation import read_mask, write_mask

    (tmp_path / "p").mkdir()
    write_mask(tmp_path / "p" / "a.png", np.ones((4, 5), bool))
    rows = pd.DataFrame({"sample_id": ["a", "b"], "width": [5, 7], "height": [4, 3]})
    assert fill_missing_masks(tmp_path / "p", rows) == 1
    assert read_mask(tmp_path / "p" / "b.png").shape == (3, 7) and not read_mask(tmp_path / "p" / "b.png").any()
    assert read_mask(tmp_path / "p" / "a.png").all()


def test_bad_recipe_values_are_user_errors(tmp_path):
    from minbench.trainers.segmentation import SegmentationTask

    ckpt = tiny_checkpoint(tmp_path / "clf.ckpt")
    with pytest.raises(UserError, match="--target-layer 'layer9'.*close names"):
        SegmentationTask(str(ckpt), target_layer="layer9", image_size=32)
    with pytest.raises(UserError, match="classifier"):
        SegmentationTask(None, image_size=32)


def test_a_true_mask_of_another_size_stops_the_run_with_its_name(tmp_path, monkeypatch, capsys):
    from test_segmentation_trainer import make_dataset

    from minbench.cli import main

    monkeypatch.chdir(tmp_path)
    root, _ = make_dataset(tmp_path / "data", bad_mask_for="s1")
    ckpt = tiny_checkpoint(tmp_path / "clf.ckpt")
    rc = main(["run", "--task", "segmentation", "--data", str(root), "--out", str(tmp_path / "r"), "--quiet",
               "--set", f"model.init_args.classifier={ckpt}", "--set", "data.init_args.image_size=32"])
    err = capsys.readouterr().err
    assert rc == 2 and "masks/s1.png: true mask is 70x93" in err and "Traceback" not in err


def test_every_segmentation_recipe_writes_a_score_map_per_mask(tiny_dataset, tmp_path):
    """Each shipped segmentation recipe's task class and writer (in process, 32 px, a tiny
    classifier): a 16-bit score map beside every mask, which the scorer scores (PxAP)."""
    import lightning as L

    from minbench.recipes import instantiate, load_recipe, shipped_recipes
    from minbench.scoring.score import score_submission
    from minbench.trainers.segmentation import MaskWriter, SegmentationTask, load_classifier

    net, classes = load_classifier(tiny_checkpoint(tmp_path / "clf.ckpt"))
    names = [n for n, p in sorted(shipped_recipes().items()) if yaml.safe_load(p.read_text())["task"] == "segmentation"]
    assert len(names) >= 6
    for name in names:
        config = load_recipe(shipped_recipes()[name])
        dm = instantiate(config["data"], "data", L.LightningDataModule, data_dir=tiny_dataset, task="segmentation",
                         seed=0, image_size=32, classes=list(classes), augment=False, num_workers=0)
        model = instantiate(config["model"], "model", SegmentationTask, **{**config["model"]["init_args"],
                            "classifier": net, "classes": classes, "image_size": 32, "task": "segmentation"})
        if model.threshold_value is None and model.hparams.threshold == "val":
            model.threshold_value = 0.5  # what the run chooses on the validation part first
        out = tmp_path / name
        trainer = L.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                            enable_model_summary=False, callbacks=[MaskWriter(out)])
        trainer.predict(model, datamodule=dm, return_predictions=False)
        masks = sorted(p.name for p in out.glob("*.png"))
        assert masks and sorted(p.name for p in (out / "maps").iterdir()) == masks, name
        with Image.open(out / "maps" / masks[0]) as im, Image.open(out / masks[0]) as mask:
            assert im.mode == "I;16" and im.size == mask.size, name
        result = score_submission("segmentation", out, tiny_dataset, n_resamples=10)
        assert 0 < result.metrics["pxap"] <= 1, name


def test_default_recipe_cam_has_16x16_cells_on_the_default_classifier_size(tmp_path, tiny_dataset):
    """The rule that gives the default data a >= 16 x 16 CAM: the default recipe reads photos at
    cam_scale x the classifier's 64 px, and the layer chosen at 64 px (stride 8) has 16 x 16 cells."""
    from minbench.recipes import load_recipe, shipped_recipes
    from minbench.trainers.segmentation import SegmentationTask, load_classifier

    init = load_recipe(shipped_recipes()["segmentation-scorecam-grabcut"])["model"]["init_args"]
    clf = load_recipe(shipped_recipes()["fewshot-small-cnn"])
    size = clf["data"]["init_args"]["image_size"]
    net, classes = load_classifier(tiny_checkpoint(tmp_path / "clf.ckpt"))
    task = SegmentationTask(net, classes=classes, image_size=size, cam_scale=init["cam_scale"], tta=init["tta"])
    assert task.input_size == 128 and task.extractor.cells[0] >= 16 and task.extractor.cells[1] >= 16


@pytest.mark.parametrize("flag, value, says", [("--tta", "flop", "tta"), ("--cam-scale", "40", "--cam-scale 40.0")])
def test_bad_cam_options_are_one_line_exit_2_before_any_work(tmp_path, monkeypatch, capsys, flag, value, says):
    from minbench.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("minbench.pipelines.segmentation_classifier.resolve_classifier",
                        lambda *a, **k: pytest.fail("slow work started"))
    rc = main(["run", "--task", "segmentation", "--out", str(tmp_path / "r"), "--quiet", flag, value])
    err = capsys.readouterr().err
    assert rc == 2 and says in err and "Traceback" not in err


def test_writer_files_are_byte_identical_to_the_format_writers_per_image(tmp_path, tiny_dataset):
    """The threaded writer's files (and make_masks' one upsampling) equal, byte for byte, the
    per-image path before it: cam_to_mask, upsample_cam, write_mask, write_score_map, 8-bit CAM."""
    import io

    import lightning as L

    from minbench.models import masking
    from minbench.recipes import instantiate
    from minbench.scoring.formats.mask_pngs import mask_png_bytes, score_map_png_bytes
    from minbench.trainers.segmentation import MaskWriter, SegmentationTask, load_classifier

    net, classes = load_classifier(tiny_checkpoint(tmp_path / "clf.ckpt"))
    model = SegmentationTask(net, classes=classes, image_size=32, cam_scale=2)
    dm = instantiate({"class_path": "minbench.data.datamodule.MineralDataModule"}, "data", L.LightningDataModule,
                     data_dir=tiny_dataset, task="segmentation", seed=0, image_size=model.input_size,
                     classes=list(classes), augment=False, num_workers=0, batch_size=3)
    writer = MaskWriter(tmp_path / "p", cam_dir=tmp_path / "c", threads=3)
    trainer = L.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=[writer])
    results = [r for batch in trainer.predict(model, datamodule=dm) for r in batch]
    assert len(results) == len(writer.written) > 3
    for r in results:
        h, w = r.mask.shape
        mask = masking.cam_to_mask(r.cam, (h, w), threshold="otsu", upsample="bilinear")
        assert (tmp_path / "p" / f"{r.sample_id}.png").read_bytes() == mask_png_bytes(mask)
        score = masking.upsample_cam(r.cam, (h, w), "bilinear")
        assert (tmp_path / "p" / "maps" / f"{r.sample_id}.png").read_bytes() == score_map_png_bytes(score)
        buf = io.BytesIO()
        Image.fromarray(np.clip(r.cam * 255.0 + 0.5, 0, 255).astype(np.uint8), mode="L").save(buf, format="PNG")
        assert (tmp_path / "c" / f"{r.sample_id}.png").read_bytes() == buf.getvalue()
