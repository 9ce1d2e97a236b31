"""Text encoders and the on-disk text-embedding cache."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from minbench.errors import UserError
from minbench.models import text_encoders as te


class CountingEncoder:
    """A deterministic stand-in encoder that counts the texts it is asked to encode."""

    dim = 8

    def __init__(self, key="fake:1"):
        self.cache_key = key
        self.calls = []

    def encode(self, texts, batch_size=64):
        self.calls.append(list(texts))
        vecs = [torch.tensor([float(ord(c)) for c in (t + " " * 8)[:8]]) + 1 for t in texts]
        return F.normalize(torch.stack(vecs), dim=-1)


def test_embeddings_are_cached_on_disk_by_encoder_and_texts(tmp_path):
    enc = CountingEncoder()
    texts = ["quartz", "calcite", "quartz"]
    first = te.encode_cached(enc, texts, cache=tmp_path)
    assert enc.calls == [["quartz", "calcite"]]  # duplicates encoded once
    assert torch.equal(first[0], first[2]) and first.shape == (3, 8)
    again = te.encode_cached(enc, texts, cache=tmp_path)
    assert len(enc.calls) == 1 and torch.equal(again, first)  # from disk
    assert len(list(tmp_path.glob("*.npy"))) == 1
    te.encode_cached(enc, ["quartz", "calcite"], cache=tmp_path)  # other texts: other key
    te.encode_cached(CountingEncoder("fake:2"), texts, cache=tmp_path)  # other weights: other key
    assert len(list(tmp_path.glob("*.npy"))) == 3


def test_damaged_cache_file_is_recomputed(tmp_path):
    enc = CountingEncoder()
    ref = te.encode_cached(enc, ["a", "b"], cache=tmp_path)
    (path,) = tmp_path.glob("*.npy")
    path.write_bytes(b"garbage")
    again = te.encode_cached(enc, ["a", "b"], cache=tmp_path)
    assert len(enc.calls) == 2 and torch.equal(again, ref)
    assert np.load(path).shape == (2, 8)


def test_default_cache_lives_under_minbench_home(tmp_path, monkeypatch):
    monkeypatch.setenv("MINBENCH_HOME", str(tmp_path))
    te.encode_cached(CountingEncoder(), ["x"])
    assert len(list((tmp_path / "text_embeddings").glob("*.npy"))) == 1


def test_texts_key_separates_boundaries():
    assert te.texts_key("e", ["ab", "c"]) != te.texts_key("e", ["a", "bc"])
    assert te.texts_key("e", ["a"]) != te.texts_key("f", ["a"])


def test_unknown_text_encoder_is_refused():
    with pytest.raises(UserError, match="text_encoder 'bert': unknown text encoder"):
        te.make_text_encoder("bert")
    with pytest.raises(UserError, match="needs a CLIP model"):
        te.make_text_encoder("clip")


def test_packaged_minilm_loads_offline_and_embeds_meaning(tmp_path):
    enc = te.make_text_encoder("minilm")
    texts = ["green fluorite crystals with vitreous lustre",
             "a group of green cubic crystals, glassy lustre",
             "brassy metallic pyrite cubes"]
    emb = te.encode_cached(enc, texts, cache=tmp_path)
    assert emb.shape == (3, 384) and emb.dtype == torch.float32
    assert torch.allclose(emb.norm(dim=1), torch.ones(3), atol=1e-4)
    sim = emb @ emb.T
    assert sim[0, 1] > sim[0, 2]
    assert enc.cache_key.startswith("minilm:")


def test_the_registry_names_the_encoders_and_their_widths():
    assert list(te.TEXT_ENCODERS) == ["minilm", "hash", "clip"]
    assert te.standalone_text_encoders() == {"minilm": 384, "hash": 384}  # clip: the CLIP model's tower
    assert te.make_text_encoder("hash").dim == 384
