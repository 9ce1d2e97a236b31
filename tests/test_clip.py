"""CLIP through open_clip: tiny architectures, local checkpoints and clear failures."""

from __future__ import annotations

import json

import pytest
import torch

from minbench.errors import UserError
from minbench.models import clip

TINY = {"embed_dim": 16,
        "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 16, "head_width": 16},
        "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1}}


@pytest.fixture
def tiny_arch(tmp_path):
    path = tmp_path / "tiny-clip.json"
    path.write_text(json.dumps(TINY))
    return str(path)


@pytest.fixture
def tiny_weights(tmp_path, tiny_arch):
    torch.manual_seed(0)
    bundle = clip.load_clip(tiny_arch, allow_random=True)
    path = tmp_path / "tiny.pt"
    torch.save(bundle.model.state_dict(), path)
    return path, bundle


def test_local_checkpoint_loads_exactly(tiny_arch, tiny_weights):
    path, ref = tiny_weights
    bundle = clip.load_clip(tiny_arch, weights=path)
    for (k, a), b in zip(ref.model.state_dict().items(), bundle.model.state_dict().values()):
        assert torch.equal(a, b), k
    assert bundle.embed_dim == 16 and bundle.image_size == 32
    assert str(path.resolve()) in bundle.identity


def test_wrapped_and_prefixed_state_dict_loads(tmp_path, tiny_arch, tiny_weights):
    path, ref = tiny_weights
    wrapped = tmp_path / "wrapped.pt"
    torch.save({"state_dict": {f"module.{k}": v for k, v in ref.model.state_dict().items()}}, wrapped)
    bundle = clip.load_clip(tiny_arch, weights=wrapped)
    assert torch.equal(bundle.model.logit_scale, ref.model.logit_scale)


def test_text_and_image_embeddings_through_the_bundle(tiny_arch, tiny_weights):
    from minbench.models.text_encoders import ClipTextEncoder

    _, bundle = tiny_weights
    emb = ClipTextEncoder(bundle).encode(["a photo of quartz.", "a photo of calcite.", "x"], batch_size=2)
    assert emb.shape == (3, 16) and torch.allclose(emb.norm(dim=1), torch.ones(3), atol=1e-5)
    images = torch.randn(2, 3, 48, 48)  # another size: resized to the model's 32 px
    out = clip.encode_images(bundle, images, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    assert out.shape == (2, 16) and torch.allclose(out.norm(dim=1), torch.ones(2), atol=1e-5)


def test_missing_checkpoint_fails_at_once_saying_how_to_supply_one(tmp_path, tiny_arch):
    with pytest.raises(UserError, match="no such checkpoint file.*--weights PATH"):
        clip.load_clip(tiny_arch, weights=tmp_path / "nope.pt")
    with pytest.raises(UserError, match="no weights given.*--weights PATH"):
        clip.load_clip(tiny_arch)


def test_hub_request_offline_fails_at_once(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(UserError, match="hub is not reachable.*--weights PATH"):
        clip.load_clip("ViT-B-32", pretrained="laion2b_s34b_b79k")
    with pytest.raises(UserError, match="tag 'nope' is unknown for ViT-B-32"):
        clip.load_clip("ViT-B-32", pretrained="nope")


def test_checkpoint_of_another_architecture_is_named(tmp_path, tiny_weights):
    path, _ = tiny_weights
    other = dict(TINY, embed_dim=24)
    arch = tmp_path / "other.json"
    arch.write_text(json.dumps(other))
    with pytest.raises(UserError, match="checkpoint for another architecture.*another shape"):
        clip.load_clip(str(arch), weights=path)


class NotWeights:
    """An arbitrary object: torch.save pickles it, weights_only=True must refuse it."""


def test_not_a_checkpoint_is_refused(tmp_path, tiny_arch):
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"this is no checkpoint")
    with pytest.raises(UserError, match="not a checkpoint torch loads with weights_only=True"):
        clip.load_clip(tiny_arch, weights=junk)

    pickled = tmp_path / "pickle.pt"
    torch.save({"obj": NotWeights()}, pickled)  # arbitrary objects: refused by weights_only
    with pytest.raises(UserError, match="weights_only=True"):
        clip.load_clip(tiny_arch, weights=pickled)


def test_unknown_architecture_names_close_ones(tmp_path):
    with pytest.raises(UserError, match="'ViT-B-33': not an architecture open_clip knows.*ViT-B-32"):
        clip.load_clip("ViT-B-33", weights=tmp_path / "w.pt")
    bad = tmp_path / "bad.json"
    bad.write_text('{"embed_dim": 8}')
    with pytest.raises(UserError, match="lacks vision_cfg, text_cfg"):
        clip.load_clip(str(bad), allow_random=True)
