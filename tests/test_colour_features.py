"""The colour-only reference's features (``models/colour_features.py``): L*a*b* as OpenCV
computes it, invariant to where colours are (flips, crops), sensitive to what they are
(hue), a solid colour in one bin, the data's normalisation undone exactly."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from minbench.data.augment import IMAGENET_MEAN, IMAGENET_STD, eval_transform
from minbench.errors import UserError
from minbench.models.colour_features import ColourStats, srgb_to_lab


def scene(size: int = 96, seed: int = 0) -> np.ndarray:
    """A grey gradient backdrop, an orange-red specimen off centre and a small green
    satellite, with sensor noise (H x W x 3 uint8)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    img = (95 + 60 * yy)[..., None] * np.ones(3)
    img[((xx - 0.45) / 0.26) ** 2 + ((yy - 0.52) / 0.19) ** 2 < 1] = (200, 70, 40)
    img[((xx - 0.7) / 0.07) ** 2 + ((yy - 0.35) / 0.06) ** 2 < 1] = (60, 170, 80)
    return np.clip(img + rng.normal(0, 6, img.shape), 0, 255).astype(np.uint8)


def features(images: np.ndarray, **kwargs) -> torch.Tensor:
    """uint8 N x H x W x 3 (or one image) -> the normalised features, as the kNN head sees them."""
    images = images[None] if images.ndim == 3 else images
    batch = eval_transform(torch.from_numpy(np.ascontiguousarray(images)))
    return F.normalize(ColourStats(**kwargs)(batch), dim=1)


def test_lab_matches_opencv():
    rgb = np.random.default_rng(1).integers(0, 256, (40, 40, 3), dtype=np.uint8)
    ours = srgb_to_lab(torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255)[0].permute(1, 2, 0).numpy()
    theirs = cv2.cvtColor(rgb.astype(np.float32) / 255, cv2.COLOR_RGB2LAB)
    assert np.abs(ours - theirs).max() < 0.5


def test_flips_and_crops_keep_the_features_a_hue_rotation_does_not():
    img = scene()
    f = features(img)[0]
    flipped = features(img[:, ::-1])[0]
    cropped = features(img[5:91, 4:90])[0]
    assert float(f @ flipped) == pytest.approx(1.0, abs=1e-5)  # where a colour is never matters
    assert float(f @ cropped) > 0.995
    for rotated in (img[..., [1, 2, 0]], img[..., [2, 0, 1]]):  # hue turned by 120 and 240 degrees
        # the grey backdrop (most of the photo) stays; the specimen's colours all move
        sim = float(f @ features(rotated)[0])
        assert sim < 0.9 and (1 - sim) > 50 * (1 - float(f @ cropped))


def test_a_solid_colour_fills_one_bin():
    solid = np.full((32, 32, 3), (30, 140, 200), np.uint8)
    batch = eval_transform(torch.from_numpy(solid)[None])
    for white_balance in (False, True):
        blocks = ColourStats(white_balance=white_balance).blocks(batch)
        assert int((blocks["ab"] > 0).sum()) == 1 and int((blocks["L"] > 0).sum()) == 1
        assert torch.linalg.vector_norm(blocks["moments"]) == pytest.approx(1.0)
    # measured against the backdrop, a photo that is all one colour has no colour left
    centre = ColourStats().ab_bins ** 2 // 2
    assert ColourStats().blocks(batch)["ab"][0, centre] == pytest.approx(1.0)


def test_white_balance_removes_a_colour_cast():
    img = scene().astype(np.float32)
    warm = np.clip(img * np.array([1.08, 1.0, 0.85]), 0, 255).astype(np.uint8)
    img = img.astype(np.uint8)
    balanced = float(features(img)[0] @ features(warm)[0])
    raw = float(features(img, white_balance=False)[0] @ features(warm, white_balance=False)[0])
    assert balanced > raw and balanced > 0.95


def test_the_normalisation_is_undone_exactly():
    img = torch.from_numpy(scene())[None]
    mean, std = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)
    model = ColourStats()
    imagenet = model(eval_transform(img, IMAGENET_MEAN, IMAGENET_STD))
    model.set_input_normalisation(mean, std)
    assert torch.allclose(model(eval_transform(img, mean, std)), imagenet, atol=1e-5)


def test_the_feature_baseline_takes_the_normalisation_from_the_data(tiny_dataset):
    import minbench
    from minbench.trainers.classification import FeatureBaselineTask

    dm = minbench.get_task("fewshot-98").datamodule(data=tiny_dataset, image_size=32, num_workers=0)
    dm.mean, dm.std = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)
    task = FeatureBaselineTask(task="fewshot-98", backbone="colour-stats", pretrained=False, head="knn",
                               num_classes=4)
    assert task.model.mean.tolist() == pytest.approx(list(IMAGENET_MEAN))
    task.configure_data(dm.task_context())
    assert task.model.mean.tolist() == [0.5] * 3 and task.model.std.tolist() == [0.25] * 3


def test_colour_stats_is_a_backbone_for_the_feature_baselines_only(tmp_path):
    from minbench.listing import list_backbones
    from minbench.models.backbones import create_backbone, feature_dim, resolve_name

    assert resolve_name("colour-stats") == "colour-stats"
    assert any(name.startswith("colour-stats (") for name in list_backbones())
    model = create_backbone("colour-stats", num_classes=0, pretrained=True, ab_bins=5)
    assert feature_dim(model) == model(torch.zeros(2, 3, 16, 16)).shape[1] == 25 + 8 + 1 + 15
    with pytest.raises(UserError, match="no trainable layers"):
        create_backbone("colour-stats", num_classes=10)
    with pytest.raises(UserError, match="has no weights"):
        create_backbone("colour-stats", num_classes=0, weights=tmp_path / "w.pth")
    with pytest.raises(UserError, match="block_weights"):
        create_backbone("colour-stats", num_classes=0, block_weights=[1, 1])
