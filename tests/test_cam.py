"""CAM wrapper: methods, target layers, reshape transforms, targets, hygiene (masks: test_cam_masking.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn

from minbench.errors import UserError
from minbench.models import cam as cams, cam_layers
from minbench.models.masking import threshold_cam


class RedDetector(nn.Module):
    """Class 0 = 'red region', class 1 = 'green region': its CAM must find the red square."""

    def __init__(self):
        super().__init__()
        conv = nn.Conv2d(3, 2, 1, bias=False)
        with torch.no_grad():
            conv.weight.zero_()
            conv.weight[0, 0], conv.weight[0, 1] = 1.0, -1.0  # red - green
            conv.weight[1, 1], conv.weight[1, 0] = 1.0, -1.0  # green - red
        # The CAM reads the post-ReLU features, as in any CNN's last stage.
        self.features = nn.Sequential(conv, nn.ReLU())
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(2, 2)
        with torch.no_grad():
            self.fc.weight.copy_(torch.diag(torch.tensor([8.0, 1.0])))  # red wins when present
            self.fc.bias.zero_()

    def forward(self, x):
        return self.fc(self.pool(self.features(x)).flatten(1))


def red_square_batch(n=3, size=32):
    """Green images with a red square at a different place in each; returns images, masks."""
    x = torch.zeros(n, 3, size, size)
    x[:, 1] = 0.6
    masks = np.zeros((n, size, size), dtype=bool)
    for i in range(n):
        y0, x0 = 2 + 5 * i, 3 + 4 * i
        x[i, 0, y0:y0 + 12, x0:x0 + 10] = 1.0
        x[i, 1, y0:y0 + 12, x0:x0 + 10] = 0.0
        masks[i, y0:y0 + 12, x0:x0 + 10] = True
    return x, masks


def iou(a, b):
    union = np.logical_or(a, b).sum()
    return np.logical_and(a, b).sum() / union if union else 1.0


def tiny_vit(**kw):
    from timm.models.vision_transformer import VisionTransformer

    torch.manual_seed(0)
    return VisionTransformer(img_size=32, patch_size=8, embed_dim=16, depth=1, num_heads=2, num_classes=3, **kw)


@pytest.mark.parametrize("method", ["gradcam", "gradcam++", "hirescam", "layercam", "xgradcam", "scorecam"])
def test_cam_finds_the_red_square(method):
    model = RedDetector().eval()
    x, masks = red_square_batch()
    ex = cams.CamExtractor(model, method, "features", image_size=32)
    with torch.inference_mode():  # as Lightning's predict loop runs it
        out = ex(x, target="predicted")
    assert out.cams.shape == (3, 32, 32)
    assert out.cams.min() >= 0.0 and out.cams.max() <= 1.0
    assert [t for t in out.targets] == [[0], [0], [0]]  # the red logit wins
    for cam, truth in zip(out.cams, masks):
        assert iou(threshold_cam(cam, "otsu"), truth) > 0.7


def test_eigencam_runs_and_is_unit_range():
    model = RedDetector().eval()
    x, _ = red_square_batch()
    out = cams.CamExtractor(model, "eigencam", "features", image_size=32)(x)
    assert out.cams.shape == (3, 32, 32) and 0.0 <= out.cams.min() and out.cams.max() <= 1.0


def test_true_target_explains_the_given_class_and_falls_back_for_unknown():
    model = RedDetector().eval()
    x, masks = red_square_batch(2)
    out = cams.CamExtractor(model, "gradcam", "features", image_size=32)(x, target="true", labels=torch.tensor([1, -1]))
    assert out.targets == [[1], [0]]
    # The green class's CAM points away from the red square.
    assert iou(threshold_cam(out.cams[0], "otsu"), masks[0]) < 0.2
    assert iou(threshold_cam(out.cams[1], "otsu"), masks[1]) > 0.7


def test_topk_target_sums_the_top_classes():
    model = RedDetector().eval()
    x, _ = red_square_batch(1)
    out = cams.CamExtractor(model, "gradcam", "features", image_size=32)(x, target="topk", top_k=5)
    assert sorted(out.targets[0]) == [0, 1]  # k capped at the number of classes
    with pytest.raises(UserError, match="cam-target"):
        cams.make_targets(1, "biggest")


def test_batched_equals_one_at_a_time():
    import timm

    torch.manual_seed(0)
    model = timm.create_model("resnet10t", num_classes=4).eval()
    x = torch.randn(4, 3, 48, 48)
    ex = cams.CamExtractor(model, "gradcam", image_size=48)
    batched = ex(x).cams
    single = np.concatenate([ex(x[i:i + 1]).cams for i in range(4)])
    np.testing.assert_allclose(batched, single, atol=1e-4)


def test_hooks_released_and_model_state_restored():
    model = RedDetector().train()
    flags_before = [p.requires_grad for p in model.parameters()]
    ex = cams.CamExtractor(model, "gradcam", "features", image_size=32)
    x, _ = red_square_batch(2)
    with torch.inference_mode():
        ex(x)
    assert not model.features._forward_hooks and not model.features._backward_hooks
    assert not model.features[0]._forward_hooks
    assert [p.requires_grad for p in model.parameters()] == flags_before
    assert model.training  # put back as it was
    assert all(p.grad is None for p in model.parameters())  # no weight gradients kept


def test_default_target_layers_per_family():
    import timm

    resnet = timm.create_model("resnet10t", num_classes=2)
    assert cam_layers.default_target_layer_names(resnet) == ["layer4"]
    assert cam_layers.default_target_layer_names(tiny_vit()) == ["blocks.0.norm1"]
    assert cam_layers.default_target_layer_names(RedDetector()) == ["features.0"]  # the last conv


def test_default_layer_keeps_enough_cells_for_a_mask():
    import timm

    resnet = timm.create_model("resnet10t", num_classes=2)
    assert cam_layers.default_target_layer_names(resnet, 224) == ["layer4"]  # 7 x 7: the usual choice
    assert cam_layers.default_target_layer_names(resnet, 64) == ["layer2"]  # layer4 would be 2 x 2
    ex = cams.CamExtractor(resnet.eval(), "gradcam", image_size=64)
    assert ex.layer_names == ["layer2"]
    assert cam_layers.default_target_layer_names(tiny_vit(), 32) == ["blocks.0.norm1"]


def test_unknown_target_layer_names_close_ones():
    import timm

    model = timm.create_model("resnet10t", num_classes=2)
    with pytest.raises(UserError, match="layer5.*close names: .*layer"):
        cams.CamExtractor(model, "gradcam", target_layers="layer5", image_size=32)


def test_several_target_layers_are_averaged():
    import timm

    model = timm.create_model("resnet10t", num_classes=2).eval()
    ex = cams.CamExtractor(model, "gradcam", target_layers="layer3, layer4", image_size=64)
    assert ex.layer_names == ["layer3", "layer4"]
    assert ex(torch.randn(2, 3, 64, 64)).cams.shape == (2, 64, 64)


def test_vit_gets_its_reshape_transform():
    model = tiny_vit().eval()
    out = cams.CamExtractor(model, "gradcam", image_size=32)(torch.randn(2, 3, 32, 32))
    assert out.cams.shape == (2, 32, 32) and np.isfinite(out.cams).all()


def test_vit_with_register_tokens():
    model = tiny_vit(reg_tokens=2).eval()
    out = cams.CamExtractor(model, "layercam", image_size=32)(torch.randn(1, 3, 32, 32))
    assert out.cams.shape == (1, 32, 32)


def test_vit_without_reshape_is_a_clear_error():
    with pytest.raises(UserError, match="tokens.*--reshape vit"):
        cams.CamExtractor(tiny_vit(), "gradcam", reshape="none", image_size=32)
    with pytest.raises(UserError, match="not tokens"):
        cams.CamExtractor(RedDetector(), "gradcam", reshape="vit", image_size=32)


def test_unknown_method_suggests():
    with pytest.raises(UserError, match="did you mean gradcam"):
        cams.CamExtractor(RedDetector(), "gradcma", image_size=32)


def test_bench_cam_reports_speed_and_memory(tmp_path, capsys):
    import json

    from minbench.cli import main

    out = tmp_path / "cam.json"
    assert main(["bench", "cam", "--backbone", "resnet10t", "--image-size", "32", "--mask-size", "48", "64",
                 "--batch", "4", "--n-speed", "4", "--n", "12", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    speed = result["speed"]
    assert speed["end_to_end_images_per_s"] > 0 and speed["model_fwd_bwd_images_per_s"] > 0
    assert speed["ratio"] == pytest.approx(speed["end_to_end_images_per_s"] / speed["model_fwd_bwd_images_per_s"],
                                           rel=0.02)
    # the default segmentation recipe's cam_scale (2): a 32 px classifier's layer1 read at 64 px
    assert result["cam_input_size"] == 64 and result["cam_cells"] == [16, 16]
    memory = result["memory"]
    assert memory["n_images"] == 12 and memory["rss_peak_sampled_mb"] >= memory["rss_start_mb"] > 0
    # every refinement's path is timed too, with what it adds per photo
    assert set(result["refinements"]) == {"grabcut", "superpixels"}
    for rates in result["refinements"].values():
        assert rates["end_to_end_images_per_s"] > 0 and "added_ms_per_image" in rates
    assert json.loads(capsys.readouterr().out) == result


def test_bench_cam_refuses_a_bad_refinement_before_timing(capsys):
    from minbench.cli import main

    assert main(["bench", "cam", "--backbone", "resnet10t", "--refine", "grabcat"]) == 2
    err = capsys.readouterr().err
    assert "--refine 'grabcat'" in err and len(err.strip().splitlines()) == 1


def test_tta_averages_views_deterministically_and_refuses_bad_names():
    import timm

    model = timm.create_model("resnet10t", pretrained=False, num_classes=3, channels=[8, 16, 32, 64]).eval()
    ex = cams.CamExtractor(model, "gradcam", image_size=32)
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    plain = cams.tta_cams(ex, x, "none")
    for tta in ("flip", "flip_scale"):
        a, b = cams.tta_cams(ex, x, tta), cams.tta_cams(ex, x, tta)
        assert a.cams.shape == plain.cams.shape and np.array_equal(a.cams, b.cams)
        assert a.targets == plain.targets and 0 <= a.cams.min() and a.cams.max() <= 1
        assert not np.array_equal(a.cams, plain.cams)
    # flip TTA of a mirrored batch is the mirror of flip TTA of the batch
    assert np.allclose(cams.tta_cams(ex, x.flip(-1), "flip").cams, cams.tta_cams(ex, x, "flip").cams[..., ::-1],
                       atol=1e-5)
    with pytest.raises(UserError, match="--tta 'flop'"):
        cams.tta_cams(ex, x, "flop")


def test_cam_scale_multiplies_the_cells_of_the_layer_chosen_at_the_classifier_size():
    import timm

    model = timm.create_model("resnet10t", pretrained=False, num_classes=3, channels=[8, 16, 32, 64]).eval()
    at64 = cams.CamExtractor(model, "gradcam", image_size=64)
    at128 = cams.CamExtractor(model, "gradcam", image_size=64, input_size=cams.cam_input_size(64, 2))
    assert at64.layer_names == at128.layer_names == ["layer2"]
    assert at64.cells == (8, 8) and at128.cells == (16, 16)
    for bad in (0, 9, "2", True):
        with pytest.raises(UserError, match="--cam-scale"):
            cams.cam_input_size(64, bad)


@pytest.mark.parametrize("method", ["gradcam", "gradcam++", "hirescam", "layercam", "xgradcam", "eigengradcam"])
def test_graph_from_the_target_layer_gives_the_cams_of_a_graph_from_the_input(method):
    """Backward stops at the target layer (a speed change): the maps are bit for bit those of
    the library run with the input in the graph, for one layer and for two."""
    import timm
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    model = timm.create_model("resnet10t", pretrained=False, num_classes=3, channels=[8, 16, 32, 64]).eval()
    x = torch.randn(3, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    for layers in ("layer2", "layer1,layer2"):
        ex = cams.CamExtractor(model, method, layers, image_size=64)
        with torch.inference_mode():
            ours = ex(x)
        lib = cams.method_class(method)(model=model, target_layers=ex.layers)
        ref = lib(input_tensor=x.clone().requires_grad_(True),
                  targets=[ClassifierOutputTarget(t[0]) for t in ours.targets])
        lib.activations_and_grads.release()
        assert np.array_equal(ours.cams, np.nan_to_num(ref.astype(np.float32), nan=0.0)), (method, layers)
