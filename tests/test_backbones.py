"""Backbones: names, local weights (fit, misfit, not a checkpoint), and the hub failing fast offline."""

from __future__ import annotations

import time

import pytest
import timm
import torch

from minbench.errors import UserError
from minbench.models import backbones

TINY = {"channels": (8, 8, 16, 16)}


class _Payload:
    """Stands for any object a malicious pickle would build on load."""


def test_unknown_backbone_lists_close_timm_names():
    with pytest.raises(UserError, match="close timm names: .*resnet50"):
        backbones.resolve_name("resnet5O")
    assert backbones.resolve_name("vit-b16").startswith("vit_base_patch16_224")
    assert backbones.resolve_name("resnet10t") == "resnet10t"


def test_local_weights_load_into_the_backbone(tmp_path):
    src = timm.create_model("resnet10t", num_classes=7, **TINY)
    path = tmp_path / "w.pth"
    torch.save(src.state_dict(), path)
    same_head = backbones.create_backbone("resnet10t", num_classes=7, weights=path, **TINY)
    assert all(torch.equal(a, b) for a, b in zip(src.state_dict().values(), same_head.state_dict().values()))
    new_head = backbones.create_backbone("resnet10t", num_classes=3, weights=path, **TINY)
    assert torch.equal(new_head.conv1[0].weight, src.conv1[0].weight) and new_head.fc.out_features == 3
    features = backbones.create_backbone("resnet10t", num_classes=0, weights=path, **TINY).eval()
    assert features(torch.randn(2, 3, 32, 32)).shape == (2, 16)


def test_safetensors_weights_load(tmp_path):
    from safetensors.torch import save_file

    src = timm.create_model("resnet10t", num_classes=4, **TINY)
    path = tmp_path / "w.safetensors"
    save_file({k: v.contiguous() for k, v in src.state_dict().items()}, str(path))
    got = backbones.create_backbone("resnet10t", num_classes=4, weights=path, **TINY)
    assert torch.equal(got.fc.weight, src.fc.weight)


def test_minbench_checkpoint_gives_its_backbone(tmp_path):
    src = timm.create_model("resnet10t", num_classes=5, **TINY)
    ckpt = {"state_dict": {f"model.{k}": v for k, v in src.state_dict().items()},
            "hyper_parameters": {"backbone": "resnet10t"}, "epoch": 3}
    path = tmp_path / "run.ckpt"
    torch.save(ckpt, path)
    got = backbones.create_backbone("resnet10t", num_classes=5, weights=path, **TINY)
    assert torch.equal(got.fc.weight, src.fc.weight)


def test_weights_that_do_not_fit_are_refused(tmp_path):
    path = tmp_path / "r10.pth"
    src = timm.create_model("resnet10t", num_classes=5, **TINY)
    torch.save(src.state_dict(), path)
    with pytest.raises(UserError, match="does not fit backbone 'resnet18'"):
        backbones.create_backbone("resnet18", num_classes=5, weights=path)
    renamed = tmp_path / "renamed.pth"
    torch.save({f"encoder.{k}": v for k, v in src.state_dict().items()}, renamed)
    # timm loads non-strictly when it drops the classifier; a misfit must still be caught
    with pytest.raises(UserError, match="weights missing"):
        backbones.create_backbone("resnet10t", num_classes=3, weights=renamed, **TINY)


@pytest.mark.parametrize("content", [b"not a checkpoint at all" * 10, b""])
def test_a_file_that_is_not_a_checkpoint_is_refused(tmp_path, content):
    path = tmp_path / "bad.ckpt"
    path.write_bytes(content)
    with pytest.raises(UserError, match="not a weights file or checkpoint"):
        backbones.create_backbone("resnet10t", num_classes=3, weights=path)
    other = tmp_path / "bad.pth"
    other.write_bytes(content)
    with pytest.raises(UserError, match="bad.pth"):
        backbones.create_backbone("resnet10t", num_classes=3, weights=other)


def test_checkpoint_with_code_is_refused(tmp_path):
    """weights_only=True: a pickle that names arbitrary classes is not loaded."""
    path = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {"model.x": torch.zeros(1)}, "payload": _Payload()}, path)
    with pytest.raises(UserError, match="not a weights file or checkpoint"):
        backbones.read_weights_file(path)


def test_pretrained_without_network_fails_at_once_and_names_weights(monkeypatch):
    import huggingface_hub.constants as hf_constants

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(backbones, "hub_reachable", lambda timeout=1.5: False)
    start = time.perf_counter()
    with pytest.raises(UserError, match="--weights PATH"):
        backbones.create_backbone("resnet18", num_classes=3, pretrained=True)
    assert time.perf_counter() - start < 15
    assert hf_constants.HF_HUB_OFFLINE is True


def test_pretrained_recipes_build_offline_from_local_weights(tmp_path):
    from minbench.recipes import instantiate, load_recipe, shipped_recipes
    from minbench.trainers.base import BaseTask

    src = timm.create_model("resnet50")
    weights = tmp_path / "resnet50.pth"
    torch.save(src.state_dict(), weights)
    for name in ("resnet50-224", "knn-resnet50"):
        config = load_recipe(shipped_recipes()[name])
        model = instantiate(config["model"], "model", BaseTask, task="fewshot-10", num_classes=4,
                            classes=list("abcd"), weights=str(weights))
        assert torch.equal(model.model.conv1.weight, src.conv1.weight)
