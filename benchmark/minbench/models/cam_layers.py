"""Which layer of a classifier a CAM reads, and how that layer's output becomes a map.

The target layer of each backbone family (timm's ``feature_info`` for CNNs: the deepest
stage with enough cells at the classifier's size; ``blocks[-1].norm1`` for ViTs; else the
last convolution), a named layer's module, and the reshape transform token and NHWC models
need (``RESHAPES``), found by probing the layer's output once. Used by
``minbench.models.cam.CamExtractor``.
"""

from __future__ import annotations

import difflib
from typing import Callable, Sequence

from minbench.errors import UserError
from minbench.registry import Registry

#: --reshape: name -> ``make(model)``, the transform of the target layer's output to a
#: (B, C, H, W) map (None: used as it is); info ``ndim``/``shape``: the output it expects.
#: ``auto`` picks one of the others from the layer's output (``resolve_reshape``).
RESHAPES: Registry = Registry("reshape")
RESHAPES.add("auto", None)


def is_vit(model) -> bool:
    """A token model of timm's VisionTransformer shape (patch_embed + blocks)."""
    return hasattr(model, "patch_embed") and hasattr(model, "blocks") and hasattr(model, "num_prefix_tokens")


MIN_CAM_CELLS = 7  # a mask needs a map of at least 7 x 7 cells (ResNet-50's layer4 at 224 px)


def default_target_layer_names(model, image_size: int | None = None, min_cells: int = MIN_CAM_CELLS) -> list[str]:
    """The layer a CAM reads for each backbone family.

    ViT: ``blocks.<last>.norm1`` (the last block's output reaches the logits only through
    the class token, so its patch tokens get no gradient; norm1 still does). timm CNNs:
    the deepest stage of ``feature_info`` whose map has at least ``min_cells`` cells a side
    at ``image_size`` (the last stage when no size is given): at 224 px that is the usual
    last stage (7 x 7), but a classifier trained at 64 px has a 2 x 2 last stage, too
    coarse for any mask, and gets the stride-8 stage (8 x 8). Others: the last Conv2d.
    """
    import torch.nn as nn

    if is_vit(model):
        return [f"blocks.{len(model.blocks) - 1}.norm1"]
    info = getattr(model, "feature_info", None)
    entries = [e for e in info if isinstance(e, dict) and e.get("module")] if isinstance(info, (list, tuple)) else []
    if entries:
        if image_size:
            fine = [e for e in entries if image_size / float(e.get("reduction") or 1) >= min_cells]
            if fine:
                return [fine[-1]["module"]]
        return [entries[-1]["module"]]
    if info is not None and hasattr(info, "module_name"):
        return [info.module_name(-1)]
    convs = [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        raise UserError(f"{type(model).__name__}: no convolution and no known target layer; "
                        "name one with --target-layer")
    return [convs[-1]]


def resolve_target_layers(model, names: str | Sequence[str] | None,
                           image_size: int | None = None) -> tuple[list, list[str]]:
    """Modules for ``names`` (comma-separated or a list; None = the family default)."""
    if names is None or names == "" or names == []:
        names = default_target_layer_names(model, image_size)
    elif isinstance(names, str):
        names = [n.strip() for n in names.split(",") if n.strip()]
    modules = dict(model.named_modules())
    layers = []
    for name in names:
        if name not in modules:
            close = difflib.get_close_matches(name, [n for n in modules if n], n=5, cutoff=0.5)
            hint = f"; close names: {', '.join(close)}" if close else ""
            raise UserError(f"--target-layer {name!r}: {type(model).__name__} has no such layer{hint}")
        layers.append(modules[name])
    return layers, list(names)


@RESHAPES.register("none", ndim=4, shape="a feature map (B, C, H, W)")
def _no_reshape(model) -> None:
    return None


@RESHAPES.register("vit", ndim=3, shape="tokens (B, N, C)")
def vit_reshape_transform(model) -> Callable:
    """Tokens (B, prefix + H*W, C) -> (B, C, H, W), dropping the class/register tokens."""
    prefix = int(getattr(model, "num_prefix_tokens", 1))
    grid = tuple(getattr(getattr(model, "patch_embed", None), "grid_size", ()) or ())

    def reshape(tensor):
        n = tensor.shape[1] - prefix
        side = int(round(n ** 0.5))
        if side * side == n:
            h, w = side, side
        elif len(grid) == 2 and grid[0] * grid[1] == n:
            h, w = grid
        else:
            raise UserError(f"ViT reshape: {n} patch tokens do not form a grid")
        return tensor[:, prefix:, :].reshape(tensor.shape[0], h, w, tensor.shape[2]).permute(0, 3, 1, 2)

    return reshape


def nhwc_reshape_transform(tensor):
    """(B, H, W, C) feature maps (timm Swin stages) -> (B, C, H, W)."""
    return tensor.permute(0, 3, 1, 2)


@RESHAPES.register("nhwc", ndim=4, shape="(B, H, W, C)")
def _nhwc_reshape(model) -> Callable:
    return nhwc_reshape_transform


def _first_tensor(output):
    return output[0] if isinstance(output, (tuple, list)) else output


def probe_layer_shapes(model, layers, image_size: int) -> list[tuple[int, ...]]:
    """Output shapes of ``layers`` for one blank image (one cheap forward)."""
    import torch

    shapes: list[tuple[int, ...]] = []
    handles = [layer.register_forward_hook(lambda m, i, o: shapes.append(tuple(_first_tensor(o).shape)))
               for layer in layers]
    param = next(model.parameters(), None)
    device = param.device if param is not None else "cpu"
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros(1, 3, image_size, image_size, device=device))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return shapes


def resolve_reshape(model, layers, names, reshape: str, image_size: int):
    """The reshape transform for ``layers`` (``auto`` picks it from the layer's output)."""
    RESHAPES.get(reshape, what=f"--reshape {reshape!r}")
    shapes = probe_layer_shapes(model, layers, image_size)
    if len(shapes) != len(layers):
        raise UserError(f"--target-layer {','.join(names)}: layer not used in the forward pass")
    ndims = {len(s) for s in shapes}
    if len(ndims) != 1:
        raise UserError(f"--target-layer {','.join(names)}: layers give outputs of different ranks {shapes}")
    ndim = ndims.pop()
    if reshape == "auto":
        if ndim == 3:
            reshape = "vit"
        elif ndim == 4 and getattr(model, "output_fmt", "NCHW") == "NHWC":
            reshape = "nhwc"
        else:
            reshape = "none"
    if reshape == "none" and ndim != 4:
        kind = "tokens (B, N, C), as a ViT does" if ndim == 3 else f"a {ndim}-D tensor {shapes[0]}"
        raise UserError(f"--target-layer {','.join(names)} outputs {kind}; a CAM needs a feature map: "
                        "use --reshape vit (or auto)")
    expects = RESHAPES.info(reshape)
    if ndim != expects["ndim"]:
        raise UserError(f"--reshape {reshape}: layer {','.join(names)} outputs {shapes[0]}, not {expects['shape']}")
    return RESHAPES.get(reshape)(model)


def layer_cells(model, layers, reshape_transform, input_size: int) -> tuple[int, int]:
    """(rows, cols) of the first target layer's map, reshaped, for a ``input_size`` input."""
    import torch

    shape = probe_layer_shapes(model, layers[:1], input_size)[0]
    if reshape_transform is not None:
        shape = tuple(reshape_transform(torch.zeros(shape)).shape)
    return int(shape[-2]), int(shape[-1])
