"""SegmentationTask through Lightning: predict writes masks, the scorer scores them, bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.metrics import average_precision_score

from minbench.errors import UserError

SIZES = [(60, 80), (90, 70), (64, 64), (50, 100), (72, 96), (80, 60), (40, 56)]  # (H, W), all different
DECOY, PLAIN = "s5", "s6"  # red but not mineral (empty truth); no red at all (empty truth)


class RedDetector(torch.nn.Module):
    """Logit 0 = red region (strong), logit 1 = green region: its CAM finds red."""

    def __init__(self):
        super().__init__()
        conv = torch.nn.Conv2d(3, 2, 1, bias=False)
        with torch.no_grad():
            conv.weight.zero_()
            conv.weight[0, 0], conv.weight[0, 1] = 1.0, -1.0
            conv.weight[1, 1], conv.weight[1, 0] = 1.0, -1.0
        self.features = torch.nn.Sequential(conv, torch.nn.ReLU())
        self.fc = torch.nn.Linear(2, 2)
        with torch.no_grad():
            self.fc.weight.copy_(torch.diag(torch.tensor([8.0, 1.0])))
            self.fc.bias.zero_()

    def forward(self, x):
        return self.fc(self.features(x).mean((2, 3)))


def make_dataset(root, *, bad_mask_for=None):
    """Green photos with a red rectangle (the 'mineral'); the last two have no mineral."""
    from minbench.data.manifest import write_dataset

    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    rows = []
    for i, (h, w) in enumerate(SIZES):
        img = np.zeros((h, w, 3), np.uint8)
        img[..., 1] = 150
        mask = np.zeros((h, w), bool)
        sid = f"s{i}"
        if sid != PLAIN:
            y0, x0 = h // 4 + (i % 3) * 3, w // 5 + (i % 2) * 5
            mask[y0:y0 + h // 3, x0:x0 + w // 3] = True
            img[mask] = (255, 0, 0)
        if sid == DECOY:
            mask[:] = False
        Image.fromarray(img).save(root / "images" / f"{sid}.png")
        mh, mw = (h + 3, w) if sid == bad_mask_for else (h, w)
        out = np.zeros((mh, mw), np.uint8)
        out[:h, :w][mask] = 255
        Image.fromarray(out).save(root / "masks" / f"{sid}.png")
        rows.append({"sample_id": sid, "image_path": f"images/{sid}.png", "width": w, "height": h,
                     "species": "red" if mask.any() else "green", "segmentation": True,
                     "mask_path": f"masks/{sid}.png", "source": "synth"})
    import pandas as pd

    write_dataset(root, pd.DataFrame(rows), name="redsquares", version="1", source="synth")
    return root, rows


def iou(a, b):
    union = np.logical_or(a, b).sum()
    return np.logical_and(a, b).sum() / union if union else 1.0


def datamodule(root, tmp_path, **kw):
    from minbench.data.datamodule import MineralDataModule

    return MineralDataModule(root, task="segmentation", image_size=32, batch_size=4, num_workers=0,
                             val_fraction=0.0, augment=False, cache_dir=tmp_path / "cache", **kw)


def lightning_trainer(tmp_path, callbacks=()):
    import lightning as L

    return L.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                     enable_model_summary=False, enable_checkpointing=False, callbacks=list(callbacks),
                     default_root_dir=str(tmp_path))


def seg_model(**kw):
    from minbench.trainers.segmentation import SegmentationTask

    kw.setdefault("target_layer", "features")
    return SegmentationTask(RedDetector(), classes=["red", "green"], image_size=32, **kw)


def scored_rows(root, rows) -> tuple[list[dict], list[dict]]:
    """Of ``rows``, those the card scores (its validation part set apart), and of them the
    first five rows' (which hold mineral)."""
    from minbench.cards import get_card
    from minbench.data.manifest import read_manifest

    ids = set(get_card("segmentation").rows(read_manifest(root), "test")["sample_id"])
    assert {"s0", PLAIN, DECOY} <= ids and len(ids) < len(rows)
    first = {r["sample_id"] for r in rows[:5]}
    return [r for r in rows if r["sample_id"] in ids], [r for r in rows if r["sample_id"] in ids & first]


def test_predict_writes_a_mask_per_image_at_its_resolution(tmp_path):
    from minbench.trainers.segmentation import MaskWriter, read_mask

    root, rows = make_dataset(tmp_path / "data")
    rows, mineral = scored_rows(root, rows)
    out, cams = tmp_path / "run" / "predictions", tmp_path / "run" / "cams"
    writer = MaskWriter(out, cam_dir=cams)
    lightning_trainer(tmp_path, [writer]).predict(seg_model(), datamodule=datamodule(root, tmp_path),
                                                   return_predictions=False)
    assert sorted(p.name for p in out.iterdir()) == sorted([f"{r['sample_id']}.png" for r in rows] + ["maps"])
    # beside each mask its score map: the CAM upsampled to the image, 16-bit
    assert sorted(p.name for p in (out / "maps").iterdir()) == sorted(f"{r['sample_id']}.png" for r in rows)
    assert not list((tmp_path / "run").glob(".*partial"))  # the folders were renamed whole
    for r in mineral:
        pred = read_mask(out / f"{r['sample_id']}.png")
        truth = read_mask(root / r["mask_path"], level=127)
        assert pred.shape == (r["height"], r["width"])
        assert iou(pred, truth) > 0.6, r["sample_id"]
        assert Image.open(cams / f"{r['sample_id']}.png").size == (32, 32)
        with Image.open(out / "maps" / f"{r['sample_id']}.png") as im:
            assert im.mode == "I;16" and im.size == (r["width"], r["height"])
            if truth.any() and not truth.all():
                assert average_precision_score(truth.ravel(), np.asarray(im).ravel()) > 0.8, r["sample_id"]
    assert writer.preds["s0"] == 0 and writer.preds[PLAIN] == 1
    assert not read_mask(out / f"{PLAIN}.png").any()  # a flat CAM gives an empty mask
    assert np.ptp(np.asarray(Image.open(out / "maps" / f"{PLAIN}.png"))) == 0  # and a constant map


def predict_masks(root, tmp_path, model, dm=None):
    """Predict the masks into a submission folder; the writer (which ids it wrote)."""
    from minbench.trainers.segmentation import MaskWriter

    writer = MaskWriter(tmp_path / "predictions")
    lightning_trainer(tmp_path, [writer]).predict(model, datamodule=dm or datamodule(root, tmp_path),
                                                  return_predictions=False)
    return writer


def test_predicted_masks_are_scored_at_the_true_resolution(tmp_path):
    from minbench.scoring.score import score_submission

    root, rows = make_dataset(tmp_path / "data")
    rows, mineral = scored_rows(root, rows)
    predict_masks(root, tmp_path, seg_model())
    result = score_submission("segmentation", tmp_path / "predictions", root)
    per_image = result.per_sample.set_index("sample_id")
    assert set(per_image.index) == {r["sample_id"] for r in rows}
    # The scorer's empty-mask rule: no mineral in truth but a predicted mask -> IoU 0;
    # both empty -> 1.
    assert per_image.loc[DECOY, "iou"] == 0.0 and per_image.loc[DECOY, "dice"] == 0.0
    assert per_image.loc[PLAIN, "iou"] == 1.0 and per_image.loc[PLAIN, "pixel_accuracy"] == 1.0
    assert all(per_image.loc[r["sample_id"], "iou"] > 0.6 for r in mineral)
    assert result.metrics["miou"] == pytest.approx(per_image["iou"].mean())


def test_true_class_target_is_refused(tmp_path):
    # the true class of a test photo is its truth: the sealed protocol keeps it from a method
    with pytest.raises(UserError, match="cam_target: 'true' explains each test photo's true class"):
        seg_model(cam_target="true")


def test_a_true_mask_of_another_size_is_the_scorers_to_name(tmp_path):
    from minbench.scoring.score import score_submission

    root, _ = make_dataset(tmp_path / "data", bad_mask_for="s1")
    # The data module never reads a test row's mask (sealed): it serves the photo ...
    dm = datamodule(root, tmp_path)
    writer = predict_masks(root, tmp_path, seg_model(), dm)
    assert "s1" in writer.written and not len(dm.skipped)
    # ... and the scorer names the mask that does not fit it
    with pytest.raises(UserError, match="70x93"):
        score_submission("segmentation", tmp_path / "predictions", root)


def test_bad_options_fail_before_any_work():
    with pytest.raises(UserError, match="--cam 'gradkam'"):
        seg_model(cam="gradkam")
    with pytest.raises(UserError, match="threshold-value"):
        seg_model(threshold="fixed", threshold_value=2)
    with pytest.raises(UserError, match="cam-target"):
        seg_model(cam_target="best")
    with pytest.raises(UserError, match="segmentation task"):
        seg_model(task="fewshot-10")


def test_classifier_stays_frozen_in_eval_mode():
    model = seg_model()
    model.train()
    assert not model.model.training
    assert not any(p.requires_grad for p in model.model.parameters())


def test_load_classifier_refuses_what_is_not_a_classifier(tmp_path):
    from minbench.trainers.segmentation import load_classifier

    junk = tmp_path / "junk.ckpt"
    junk.write_bytes(b"not a checkpoint at all")
    with pytest.raises(UserError, match="junk.ckpt: not a loadable checkpoint"):
        load_classifier(junk)
    other = tmp_path / "other.ckpt"
    torch.save({"state_dict": {}, "hyper_parameters": {"lr": 1.0}}, other)
    with pytest.raises(UserError, match="not a minbench classifier checkpoint"):
        load_classifier(other)
    knn = tmp_path / "knn.ckpt"
    torch.save({"state_dict": {}, "hyper_parameters": {"backbone": "resnet10t", "head": "knn"}}, knn)
    with pytest.raises(UserError, match="training-free knn"):
        load_classifier(knn)


def tiny_classifier_checkpoint(path, classes=("a", "b", "c")):
    """A real ClassificationTask checkpoint (random weights, tiny widths)."""
    from minbench.trainers.classification import ClassificationTask

    torch.manual_seed(0)
    clf = ClassificationTask(task="fewshot-10", backbone="resnet10t", num_classes=len(classes),
                                classes=list(classes), model_kwargs={"channels": [8, 16, 32, 64]})
    torch.save({"state_dict": clf.state_dict(), "hyper_parameters": dict(clf.hparams)}, path)
    return clf


def test_load_classifier_round_trip(tmp_path):
    from minbench.trainers.segmentation import SegmentationTask, load_classifier

    clf = tiny_classifier_checkpoint(tmp_path / "clf.ckpt")
    net, classes = load_classifier(tmp_path / "clf.ckpt")
    assert classes == ["a", "b", "c"]
    x = torch.randn(2, 3, 32, 32)
    clf.eval()
    torch.testing.assert_close(net(x), clf.model(x))
    seg = SegmentationTask(str(tmp_path / "clf.ckpt"), image_size=32)
    # 32 px: layer1 is the deepest stage with >= 7 x 7 cells (layer4 would be 1 x 1).
    assert seg.classes == ["a", "b", "c"] and seg.extractor.layer_names == ["layer1"]
    bad = tmp_path / "bad.ckpt"
    raw = torch.load(tmp_path / "clf.ckpt", weights_only=True)
    raw["hyper_parameters"]["num_classes"], raw["hyper_parameters"]["classes"] = 5, list("abcde")
    torch.save(raw, bad)
    with pytest.raises(UserError, match="weights do not fit resnet10t"):
        load_classifier(bad)
    json.dumps(seg.hparams)  # the hyperparameters stay plain data (no module inside)
