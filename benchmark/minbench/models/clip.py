"""CLIP through open_clip: any architecture it knows, weights from a local file or the hub.

``load_clip(arch, weights=PATH)`` builds the architecture with ``pretrained=None`` (no
network) and loads the checkpoint with ``weights_only=True``; ``load_clip(arch,
pretrained=TAG)`` asks the hub, but only after a quick check that it is reachable, so an
offline machine fails at once with a message on how to supply a checkpoint instead of
hanging. ``arch`` may also be a JSON file of an open_clip model config (``embed_dim``,
``vision_cfg``, ``text_cfg``; tests use a tiny one).
"""

from __future__ import annotations

import contextlib
import difflib
import json
import logging
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from minbench.errors import UserError
from minbench.io import read_json

HUB_HOST = "huggingface.co"
HOW_TO_SUPPLY = ("download an open_clip checkpoint on a connected machine (e.g. "
                 "open_clip_pytorch_model.bin of laion/CLIP-ViT-B-32-laion2B-s34B-b79K on the Hugging "
                 "Face hub) and pass it with --weights PATH")


@dataclass
class ClipBundle:
    """A CLIP model with what it needs around it."""

    model: Any
    tokenizer: Any
    arch: str
    identity: str          # arch + weights identity: part of the text-embedding cache key
    image_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    embed_dim: int


def hub_reachable(host: str = HUB_HOST, timeout: float = 2.0) -> bool:
    """Whether the hub answers (False at once when HF_HUB_OFFLINE is set)."""
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
        return False
    try:
        with socket.create_connection((host, 443), timeout=timeout):
            return True
    except OSError:
        return False


def _arch_config(arch: str) -> tuple[str, dict | None]:
    """(open_clip name to build on, config overrides) for a known name or a JSON config file."""
    import open_clip

    if arch.endswith(".json"):
        cfg = read_json(Path(arch), "open_clip model config (--arch)")
        if not isinstance(cfg, dict):
            raise UserError(f"--arch {arch}: an open_clip model config is a JSON object")
        missing = [k for k in ("embed_dim", "vision_cfg", "text_cfg") if k not in cfg]
        if missing:
            raise UserError(f"--arch {arch}: model config lacks {', '.join(missing)}")
        # Built on ViT-B-32 only for its tokenizer choice (SimpleTokenizer); every tower
        # setting comes from the file.
        return "ViT-B-32", cfg
    known = open_clip.list_models()
    if arch not in known:
        close = difflib.get_close_matches(arch, known, n=4, cutoff=0.5)
        hint = f"; closest: {', '.join(close)}" if close else ""
        raise UserError(f"--arch {arch!r}: not an architecture open_clip knows ({len(known)} known{hint})")
    return arch, None


def load_clip(arch: str, *, weights: str | Path | None = None, pretrained: str | None = None,
              device: str = "cpu", allow_random: bool = False) -> ClipBundle:
    """Build ``arch`` and load its weights (``weights`` file, else hub tag ``pretrained``).

    ``allow_random=True`` (tests only) builds an untrained model when neither is given.
    """
    import open_clip
    import torch

    base, cfg = _arch_config(arch)
    if weights is not None:
        weights = Path(weights).expanduser()
        if not weights.is_file():
            raise UserError(f"--weights {weights}: no such checkpoint file; {HOW_TO_SUPPLY}")
    elif pretrained:
        if cfg is None and pretrained not in open_clip.list_pretrained_tags_by_model(base):
            tags = open_clip.list_pretrained_tags_by_model(base)
            raise UserError(f"pretrained tag {pretrained!r} is unknown for {arch} "
                            f"(known: {', '.join(tags) or 'none'})")
        if not hub_reachable():
            raise UserError(f"CLIP {arch} ({pretrained}): the model hub is not reachable from here; "
                            f"{HOW_TO_SUPPLY}")
    elif not allow_random:
        raise UserError(f"CLIP {arch}: no weights given; {HOW_TO_SUPPLY} "
                        "(or set model.pretrained to a hub tag when online)")

    kwargs = dict(cfg) if cfg else {}
    try:
        if weights is None and pretrained:
            model = open_clip.create_model(base, pretrained=pretrained, device=device, **kwargs)
        else:
            with _quiet_root_logger():  # "no pretrained weights loaded": they are loaded next
                model = open_clip.create_model(base, pretrained=None, device=device, **kwargs)
    except Exception as exc:  # open_clip raises RuntimeError/ValueError/hub errors
        raise UserError(f"CLIP {arch}: could not build the model ({type(exc).__name__}: {exc})") from None
    identity = f"{arch}:random"
    if weights is not None:
        load_weights(model, weights, arch)
        st = weights.stat()
        identity = f"{Path(arch).name}:{weights.resolve()}:{st.st_size}:{st.st_mtime_ns}"
    elif pretrained:
        identity = f"{arch}:{pretrained}"
    model.eval()
    text_cfg = (cfg or open_clip.get_model_config(base) or {}).get("text_cfg", {})
    try:
        tokenizer = open_clip.get_tokenizer(base, context_length=text_cfg.get("context_length"))
    except Exception as exc:  # HF tokenizers need the hub
        raise UserError(f"CLIP {arch}: its tokenizer could not be loaded ({type(exc).__name__}: {exc}); "
                        "architectures with Hugging Face tokenizers need them in the local HF cache") from None
    pp = getattr(model.visual, "preprocess_cfg", None) or {}
    size = pp.get("size", getattr(model.visual, "image_size", 224))
    size = size[0] if isinstance(size, (tuple, list)) else size
    mean = tuple(pp.get("mean", open_clip.OPENAI_DATASET_MEAN))
    std = tuple(pp.get("std", open_clip.OPENAI_DATASET_STD))
    with torch.inference_mode():
        embed_dim = int(model.encode_text(tokenizer(["x"]).to(device)).shape[-1])
    return ClipBundle(model=model, tokenizer=tokenizer, arch=arch, identity=identity,
                      image_size=int(size), mean=mean, std=std, embed_dim=embed_dim)


@contextlib.contextmanager
def _quiet_root_logger():
    """open_clip logs through the root logger; hush its warnings for one call."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def load_weights(model, path: Path, arch: str) -> None:
    """Load a local checkpoint into ``model`` (``weights_only=True``); clear errors otherwise.

    Every tensor is checked against the architecture before loading, so a checkpoint of
    another architecture is named as such instead of failing deep inside torch.
    """
    import torch
    from open_clip import factory

    try:
        sd = factory.load_state_dict(str(path), device="cpu", weights_only=True)
    except Exception as exc:  # unpickling a non-checkpoint raises almost any type
        first = str(exc).splitlines()[0] if str(exc) else ""
        first = first.split(". ")[0][:160]  # torch's weights_only message runs on for lines
        raise UserError(f"--weights {path}: not a checkpoint torch loads with weights_only=True "
                        f"({type(exc).__name__}{': ' + first if first else ''})") from None
    if not isinstance(sd, dict) or not sd:
        raise UserError(f"--weights {path}: not a state dict of tensors")
    try:  # open_clip's converters for third-party layouts (e.g. timm/big_vision towers)
        sd = factory.convert_state_dict(model, sd)
    except Exception:
        pass
    if "positional_embedding" in sd and not hasattr(model, "positional_embedding"):
        sd = factory.convert_to_custom_text_state_dict(sd)
    ref = model.state_dict()
    for name in ("logit_scale", "logit_bias"):
        if name in sd and name in ref and isinstance(sd[name], torch.Tensor) and sd[name].numel() == ref[name].numel():
            sd[name] = sd[name].reshape(ref[name].shape)
    sd.pop("text.transformer.embeddings.position_ids", None)
    if "logit_bias" in ref and "logit_bias" not in sd and "logit_scale" in sd:
        sd["logit_bias"] = torch.zeros_like(ref["logit_bias"])
    missing = [k for k in ref if k not in sd]
    unexpected = [k for k in sd if k not in ref]
    mismatched = [k for k in ref if k in sd and (not isinstance(sd[k], torch.Tensor) or sd[k].shape != ref[k].shape)]
    if missing or unexpected or mismatched:
        parts = []
        if mismatched:
            k = mismatched[0]
            got = tuple(sd[k].shape) if isinstance(sd[k], torch.Tensor) else type(sd[k]).__name__
            parts.append(f"{len(mismatched)} tensors of another shape, e.g. {k} {got} where {arch} has "
                         f"{tuple(ref[k].shape)}")
        if missing:
            parts.append(f"{len(missing)} missing, e.g. {missing[0]}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected, e.g. {unexpected[0]}")
        raise UserError(f"--weights {path}: a checkpoint for another architecture than {arch} "
                        f"({'; '.join(parts)})")
    model.load_state_dict(sd, strict=True)


def encode_images(bundle: ClipBundle, images, in_mean, in_std):
    """CLIP image embeddings (normalised) of a batch normalised with ``in_mean``/``in_std``.

    The data module normalises with ImageNet statistics at its own size; CLIP wants its
    own statistics and input size, so the batch is re-normalised and resized here.
    """
    import torch
    import torch.nn.functional as F

    dev, dt = images.device, images.dtype
    im = torch.as_tensor(in_mean, device=dev, dtype=dt).view(1, 3, 1, 1)
    isd = torch.as_tensor(in_std, device=dev, dtype=dt).view(1, 3, 1, 1)
    cm = torch.as_tensor(bundle.mean, device=dev, dtype=dt).view(1, 3, 1, 1)
    cs = torch.as_tensor(bundle.std, device=dev, dtype=dt).view(1, 3, 1, 1)
    x = (images * isd + im - cm) / cs
    if x.shape[-1] != bundle.image_size or x.shape[-2] != bundle.image_size:
        x = F.interpolate(x, size=(bundle.image_size, bundle.image_size), mode="bicubic",
                          align_corners=False, antialias=True)
    return bundle.model.encode_image(x, normalize=True).float()
