"""The zero-shot protocol rule: no prediction reads a test sample's own text.

Unseen classes are named by class-level text only (names in templates, the dataset's
class descriptions, ``TaskContext.class_texts``). Two guards: the whole ``minbench run``
gives the same predictions when every test row's ``description`` is garbage or shuffled
(the trained baseline and CLIP), and the text encoder is never handed a test or
validation row's description. Old recipes naming unseen classes by test descriptions are
refused before anything slow.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
import yaml

from minbench.cli import main
from minbench.data import manifest

TINY_RECIPE = {
    "name": "zeroshot-protocol", "task": "zeroshot", "seeds": [0],
    "model": {"class_path": "minbench.trainers.zeroshot.ContrastiveZeroShot",
              "init_args": {"backbone": "test_resnet", "text_encoder": "hash", "embed_dim": 32, "lr": 0.001,
                            "text_source": "both"}},
    "data": {"class_path": "minbench.data.datamodule.MineralDataModule",
             "init_args": {"image_size": 32, "batch_size": 16, "num_workers": 0, "val_fraction": 0.1}},
    "trainer": {"max_epochs": 1, "accelerator": "cpu", "devices": 1},
}


def _with_test_descriptions(src, dst, how: str):
    """A copy of dataset ``src`` whose zero-shot (test) rows' descriptions are replaced."""
    shutil.copytree(src, dst)
    info = manifest.read_info(dst)
    frame = manifest.read_manifest(dst)
    test = frame["zeroshot"].to_numpy()
    if how == "garbage":
        frame.loc[test, "description"] = [f"zz{i} qq violet adamantine orthorhombic" for i in range(int(test.sum()))]
    else:  # shuffled among the test rows: every text now describes another image
        desc = frame.loc[test, "description"].to_numpy()
        frame.loc[test, "description"] = np.roll(desc, 1)
    assert (frame.loc[test, "description"].to_numpy() != manifest.read_manifest(src).loc[test, "description"]
            .to_numpy()).all()
    manifest.write_dataset(dst, frame, name=info.name, version=info.version, source=info.source, extra=info.extra)
    return dst


def _run(data, recipe_path, out, *extra):
    rc = main(["run", "--task", "zeroshot", "--data", str(data), "--config", str(recipe_path), "--out", str(out),
               "--quiet", "--no-leaderboard", *extra])
    assert rc == 0
    seed = out / "seed0"
    sub = pd.read_csv(seed / "predictions.csv", keep_default_na=False).sort_values("sample_id")
    gzsl = json.loads((seed / "gzsl.json").read_text()) if (seed / "gzsl.json").exists() else None
    return sub.reset_index(drop=True), gzsl


def test_trained_baseline_predictions_ignore_test_descriptions(tiny_dataset, tmp_path):
    assert manifest.read_info(tiny_dataset).class_texts, "the embedded data must carry class texts"
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump(TINY_RECIPE))
    clean, gz_clean = _run(tiny_dataset, recipe, tmp_path / "clean")
    garbage = _with_test_descriptions(tiny_dataset, tmp_path / "garbage", "garbage")
    poisoned, gz_poisoned = _run(garbage, recipe, tmp_path / "garbage-run")
    pd.testing.assert_frame_equal(clean, poisoned)
    assert gz_clean is not None and gz_clean["h"] == gz_poisoned["h"] and gz_clean["seen"] == gz_poisoned["seen"]


def test_clip_predictions_ignore_test_descriptions(tiny_dataset, tmp_path):
    import torch

    from minbench.models.clip import load_clip
    from test_clip import TINY

    arch = tmp_path / "tiny-clip.json"
    arch.write_text(json.dumps(TINY))
    weights = tmp_path / "w.pt"
    torch.manual_seed(0)
    torch.save(load_clip(str(arch), allow_random=True).model.state_dict(), weights)
    recipe = tmp_path / "clip.yaml"
    recipe.write_text(yaml.safe_dump({**TINY_RECIPE, "model": {
        "class_path": "minbench.trainers.zeroshot.ClipZeroShot",
        "init_args": {"arch": str(arch), "text_source": "both"}}}))
    clean, _ = _run(tiny_dataset, recipe, tmp_path / "clean", "--weights", str(weights))
    shuffled = _with_test_descriptions(tiny_dataset, tmp_path / "shuffled", "shuffle")
    poisoned, _ = _run(shuffled, recipe, tmp_path / "shuffled-run", "--weights", str(weights))
    pd.testing.assert_frame_equal(clean, poisoned)


def test_class_texts_come_from_dataset_json_only(tmp_path):
    info = manifest.DatasetInfo(name="t", version="1", source="synth", fingerprint="", n_samples=0, extra={
        "class_descriptions": {"quartz": "  quartz: colourless;\n vitreous lustre. ", "beryl": "", "pyrite": 3}})
    assert info.class_texts == {"quartz": "quartz: colourless; vitreous lustre."}  # blank / non-text dropped
    assert manifest.DatasetInfo("t", "1", "synth", "", 0, {}).class_texts == {}


class RecordingEncoder:
    """A text encoder that records every text it is asked to embed."""

    def __init__(self, inner):
        self.inner, self.dim, self.texts = inner, inner.dim, []
        self.cache_key = f"recording:{id(self)}"  # never a cache hit: every text goes through encode

    def encode(self, texts, batch_size: int = 64):
        self.texts.extend(texts)
        return self.inner.encode(texts, batch_size=batch_size)


@pytest.mark.parametrize("source", ["names", "class_text", "both"])
def test_no_test_or_validation_description_reaches_the_text_encoder(tiny_dataset, tmp_path, source):
    from minbench.data.datamodule import MineralDataModule
    from minbench.models.text_encoders import make_text_encoder
    from minbench.trainers.zeroshot import ContrastiveZeroShot

    dm = MineralDataModule(tiny_dataset, task="zeroshot", image_size=32, batch_size=16, num_workers=0,
                           val_fraction=0.1, seed=0, cache_dir=tmp_path / "cache")
    dm.setup("test")
    ctx = dm.task_context()
    model = ContrastiveZeroShot(backbone="test_resnet", text_encoder="hash", embed_dim=32, text_source=source)
    model._encoder = rec = RecordingEncoder(make_text_encoder("hash"))
    model.configure_data(ctx)
    frame = ctx.frame
    held_out = np.concatenate([ctx.split_positions("test"), ctx.split_positions("val")])
    train_text = set(frame["description"].to_numpy()[ctx.split_positions("train")])
    leaked = (set(frame["description"].to_numpy()[held_out]) - train_text) & set(rec.texts)
    assert not leaked
    if source != "names":  # the unseen classes' own class descriptions were read instead
        assert {ctx.class_texts[c] for c in model.unseen.classes} <= set(rec.texts)
    assert ctx.class_texts and set(model.unseen.classes) <= set(ctx.class_texts)


def test_old_descriptions_recipe_is_refused_in_one_line(tmp_path, capsys):
    old = json.loads(json.dumps(TINY_RECIPE))
    old["model"]["init_args"].update(text_source="descriptions", leave_one_out=True)
    recipe = tmp_path / "old.yaml"
    recipe.write_text(yaml.safe_dump(old))
    rc = main(["run", "--task", "zeroshot", "--config", str(recipe), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.count("\n") == 0 and "Traceback" not in err
    assert "text_source: 'descriptions' is no longer offered" in err and "'class_text'" in err
    assert "leave_one_out" in err and not (tmp_path / "out").exists()


def test_leave_one_out_alone_is_refused_and_the_api_refuses_descriptions(tmp_path, capsys):
    from minbench.errors import UserError
    from minbench.trainers.zeroshot import ContrastiveZeroShot

    old = json.loads(json.dumps(TINY_RECIPE))
    old["model"]["init_args"]["leave_one_out"] = False
    recipe = tmp_path / "old.yaml"
    recipe.write_text(yaml.safe_dump(old))
    assert main(["run", "--task", "zeroshot", "--config", str(recipe), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "leave_one_out: no longer offered" in err
    with pytest.raises(UserError, match="'descriptions' is no longer offered.*'class_text'"):
        ContrastiveZeroShot(backbone="test_resnet", text_encoder="hash", text_source="descriptions")
