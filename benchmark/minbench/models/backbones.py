"""Backbones from timm: creation by name, and where pretrained weights come from.

Weights come from, in order of preference:
1. ``weights=PATH``: a local file, read with ``weights_only=True`` (a timm/PyTorch state
   dict ``.pth``/``.bin``, a ``.safetensors`` file, or a minbench run's Lightning ``.ckpt``,
   whose backbone is taken). It must fit the backbone: every weight but the classifier
   present with the right shape, else a ``UserError``.
2. ``pretrained=True``: timm's hub weights. Without a network the hub is switched to
   offline mode first (``HF_HUB_OFFLINE=1``) so the request fails at once and says to use
   ``--weights`` instead of hanging for ~45 s. Weights already in the local hub cache
   still load offline.
3. Neither: random initialisation (the embedded default recipe trains from scratch).

``ALIASES`` maps the short names the recipes use to timm names; any timm name works too.
``HANDCRAFTED_BACKBONES`` registers the feature extractors that are not timm models and have
no weights (``colour-stats``: colour statistics of the non-backdrop pixels, ``models/colour_features.py``);
they give pooled features only (``num_classes=0``), for the training-free
``FeatureBaselineTask``, and take no ``weights``.
"""

from __future__ import annotations

import difflib
import logging
import os
import socket
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
from torch import nn

from minbench.errors import UserError
from minbench.registry import Registry

#: short names used by the recipes -> timm model names (with their pretrained tag).
ALIASES: dict[str, str] = {
    "resnet50": "resnet50.a1_in1k",
    "resnet18": "resnet18.a1_in1k",
    "vit-b16": "vit_base_patch16_224.augreg2_in21k_ft_in1k",
    "vit-s16": "vit_small_patch16_224.augreg_in21k_ft_in1k",
    "convnext-tiny": "convnext_tiny.in12k_ft_in1k",
    "efficientnet-b0": "efficientnet_b0.ra_in1k",
}

#: feature extractors without weights that are not timm models: name -> ``make(**kwargs)``;
#: info ``description``: what it is (``minbench list backbones``). timm's names stay timm's.
HANDCRAFTED_BACKBONES: Registry[Callable[..., nn.Module]] = Registry("handcrafted backbone")


@HANDCRAFTED_BACKBONES.register("colour-stats",
                                description="CIE L*a*b* histograms and moments of the non-backdrop pixels; no weights")
def _colour_stats(**kwargs: Any) -> nn.Module:
    from minbench.models.colour_features import ColourStats

    return ColourStats(**kwargs)


HUB_HOST = ("huggingface.co", 443)
_MINBENCH_CKPT_PREFIXES = ("model.", "backbone.")


def resolve_name(name: str) -> str:
    """An alias or timm name (with optional ``.tag``) -> the timm name; ``UserError``
    listing close timm names when it is unknown."""
    if name in HANDCRAFTED_BACKBONES:
        return name
    import timm

    full = ALIASES.get(name, name)
    arch = full.split(".", 1)[0]
    if timm.is_model(arch):
        return full
    known = sorted(set(timm.list_models()) | set(ALIASES) | set(HANDCRAFTED_BACKBONES))
    close = difflib.get_close_matches(name.lower(), known, n=5, cutoff=0.6)
    hint = f"; close timm names: {', '.join(close)}" if close else "; see timm.list_models()"
    raise UserError(f"backbone {name!r} is not a timm model{hint}")


def hub_reachable(timeout: float = 1.5) -> bool:
    """Whether the Hugging Face hub answers on its port within ``timeout`` seconds
    (DNS included: the probe runs in a thread we stop waiting for)."""
    ok: list[bool] = []

    def probe() -> None:
        try:
            with socket.create_connection(HUB_HOST, timeout=timeout):
                ok.append(True)
        except OSError:
            pass

    t = threading.Thread(target=probe, daemon=True)
    t.start()
    t.join(timeout + 0.5)
    return bool(ok)


def ensure_hub_mode() -> bool:
    """Switch the hub to offline mode when it cannot be reached; returns True if online."""
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
        online = False
    else:
        online = hub_reachable()
    if not online:
        os.environ["HF_HUB_OFFLINE"] = "1"
        try:  # huggingface_hub reads the variable at import; tell an already imported one too
            import huggingface_hub.constants as hf_constants

            hf_constants.HF_HUB_OFFLINE = True
        except ImportError:
            pass
    return online


def read_weights_file(path: str | Path) -> dict[str, torch.Tensor]:
    """A local weights file -> a flat state dict (read with ``weights_only=True``).

    A Lightning checkpoint of a minbench run gives its backbone (``model.*`` keys with
    the prefix removed); timm's reader handles ``.safetensors``, nested ``state_dict`` /
    ``model`` entries and ``module.`` prefixes.
    """
    from timm.models import load_state_dict

    path = Path(path)
    if not path.is_file():
        raise UserError(f"--weights {path}: no such file")
    try:
        if path.suffix == ".ckpt":
            raw = torch.load(path, map_location="cpu", weights_only=True)
            if not isinstance(raw, dict) or not isinstance(raw.get("state_dict"), dict):
                raise ValueError("no 'state_dict' in it")
            sd = raw["state_dict"]
            for prefix in _MINBENCH_CKPT_PREFIXES:
                picked = {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}
                if picked:
                    sd = picked
                    break
        else:
            sd = load_state_dict(str(path), use_ema=True, weights_only=True)
    except UserError:
        raise
    except Exception as exc:  # pickle, zip and safetensors errors have many types
        msg = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else ""
        raise UserError(f"--weights {path}: not a weights file or checkpoint "
                        f"({type(exc).__name__}: {msg})") from None
    if not isinstance(sd, dict) or not sd or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise UserError(f"--weights {path}: holds no state dict of tensors")
    return dict(sd)


@contextmanager
def _capture_timm_load_report() -> Iterator[dict[str, list[str]]]:
    """Collect the missing/unexpected keys timm reports while loading weights (it loads
    non-strictly whenever it drops the classifier, so a misfit would pass silently)."""
    report: dict[str, list[str]] = {"missing": [], "unexpected": []}

    class _Handler(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            msg = record.getMessage()
            for key, head in (("missing", "Missing keys ("), ("unexpected", "Unexpected keys (")):
                if msg.startswith(head):
                    report[key] += [k.strip() for k in msg[len(head):msg.index(")")].split(",") if k.strip()]

    logger = logging.getLogger("timm.models._builder")
    handler, old_level, old_propagate = _Handler(level=logging.INFO), logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        yield report
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
        logger.propagate = old_propagate


def create_backbone(name: str, *, num_classes: int, pretrained: bool = False, weights: str | Path | None = None,
                    **kwargs: Any) -> nn.Module:
    """A timm model with a ``num_classes`` head (``0`` = pooled features, no head).

    ``kwargs`` go to ``timm.create_model`` (e.g. ``drop_rate``, ``img_size`` for a ViT at
    another resolution, ``channels`` for a narrower ResNet). A ``HANDCRAFTED_BACKBONES`` name
    builds its extractor with ``kwargs`` (features only; ``pretrained`` means nothing to it).
    """
    if name in HANDCRAFTED_BACKBONES:
        return _create_handcrafted(name, num_classes=num_classes, weights=weights, **kwargs)
    import timm

    full = resolve_name(name)
    if weights is not None:
        sd = read_weights_file(weights)
        overlay: dict[str, Any] = {"state_dict": sd}
        head_rows = _head_rows(full, sd)
        if head_rows is not None:
            # timm keeps the file's classifier only when the class counts agree.
            overlay["num_classes"] = head_rows
        try:
            with _capture_timm_load_report() as report:
                model = timm.create_model(full, pretrained=True, num_classes=num_classes,
                                          pretrained_cfg_overlay=overlay, **kwargs)
        except RuntimeError as exc:
            first = " ".join(str(exc).split())[:300]
            raise UserError(f"--weights {weights}: does not fit backbone {name!r} ({first})") from None
        head = set(_classifier_keys(model))
        missing = [k for k in report["missing"] if k not in head]
        if missing:
            raise UserError(f"--weights {weights}: does not fit backbone {name!r}: {len(missing)} weights "
                            f"missing (e.g. {', '.join(missing[:3])})")
        return model
    if pretrained:
        online = ensure_hub_mode()
        try:
            return timm.create_model(full, pretrained=True, num_classes=num_classes, **kwargs)
        except Exception as exc:  # hub errors come as many types (OSError, HTTP, offline mode)
            where = "the Hugging Face hub is not reachable" if not online else f"download failed ({type(exc).__name__})"
            raise UserError(f"backbone {name!r}: pretrained weights unavailable: {where}; download them "
                            "where there is a network and pass --weights PATH "
                            "(or set pretrained: false to train from scratch)") from None
    return timm.create_model(full, pretrained=False, num_classes=num_classes, **kwargs)


def _create_handcrafted(name: str, *, num_classes: int, weights: str | Path | None, **kwargs: Any) -> nn.Module:
    make = HANDCRAFTED_BACKBONES.get(name, what=f"backbone {name!r}")
    if num_classes:
        raise UserError(f"backbone {name!r} has no trainable layers: use it with the training-free "
                        "minbench.trainers.classification.FeatureBaselineTask")
    if weights is not None:
        raise UserError(f"--weights {weights}: backbone {name!r} has no weights")
    try:
        return make(**kwargs)
    except (TypeError, ValueError) as exc:
        raise UserError(f"model.init_args.model_kwargs: backbone {name!r}: {exc}") from None


def _head_rows(full_name: str, sd: dict[str, torch.Tensor]) -> int | None:
    """Number of classes of the classifier stored in ``sd`` (None when it has none)."""
    from timm.models import get_pretrained_cfg

    cfg = get_pretrained_cfg(full_name)
    names = getattr(cfg, "classifier", None) or ()
    for n in (names,) if isinstance(names, str) else names:
        w = sd.get(f"{n}.weight")
        if w is not None and w.ndim >= 1:
            return int(w.shape[0])
    return None


def _classifier_keys(model: nn.Module) -> list[str]:
    cfg = getattr(model, "pretrained_cfg", None) or {}
    names = cfg.get("classifier") or ()
    names = (names,) if isinstance(names, str) else tuple(names)
    return [f"{n}.{p}" for n in names for p in ("weight", "bias")]


def feature_dim(model: nn.Module) -> int:
    """Width of the pooled features of a timm model (its ``num_features``)."""
    return int(getattr(model, "num_features"))
