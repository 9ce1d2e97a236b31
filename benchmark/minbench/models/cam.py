"""Class-activation maps of a classifier (the zero-shot segmentation task).

The CAM methods are pytorch-grad-cam's; this module adds what a benchmark needs around
them: a registry of method names (``METHODS``), the CAM target (predicted class, true
class, sum of the top-k), the CAM's input side (``cam_input_size``: a multiple of the
classifier's, for more cells) and test-time averaging over flipped and rescaled views
(``TTA``, ``tta_cams``).
Which layer a CAM reads and how its output becomes a map is ``minbench.models.cam_layers``'s;
turning a CAM into a mask (upsampling, threshold rules) is ``minbench.models.masking``'s.

CAM needs gradients, while Lightning runs predict/test under ``inference_mode``:
``CamExtractor.__call__`` re-enables autograd itself. Hooks live only for one call and
every tensor the library keeps (activations, gradients, the retained graph) is released
before the call returns, so memory stays flat over any number of images.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from minbench.errors import UserError
from minbench.models.cam_layers import layer_cells, resolve_reshape, resolve_target_layers
from minbench.registry import Registry

#: --cam: method name -> a function returning its pytorch-grad-cam class (imported on use);
#: info ``library_class``: the library's class name
METHODS: Registry[Callable[[], type]] = Registry("CAM method")
#: --cam-target: rule name -> ``classes(logits, label, top_k)``, the classes one image's CAM explains
TARGETS: Registry[Callable[..., list[int]]] = Registry("CAM target")
#: why the ``true`` target is refused for runs: it reads a test row's truth before the submission
#: exists (the sealed protocol); said in one line by the run's validator and by the task itself
CAM_TRUE_TARGET_REFUSED = ("'true' explains each test photo's true class, which is the test truth the "
                           "sealed protocol keeps from a method; use 'predicted' or 'topk'")
#: --tta: name -> the views whose CAMs are averaged, each (horizontal flip, input scale)
TTA: Registry[tuple[tuple[bool, float], ...]] = Registry("CAM test-time augmentation")
TTA.add("none", ((False, 1.0),))
TTA.add("flip", ((False, 1.0), (True, 1.0)))
TTA.add("flip_scale", ((False, 1.0), (True, 1.0), (False, 1.5), (True, 1.5)))


def _library_method(class_name: str) -> Callable[[], type]:
    def load() -> type:
        import pytorch_grad_cam

        return getattr(pytorch_grad_cam, class_name)

    return load


for _name, _class_name in (("gradcam", "GradCAM"), ("gradcam++", "GradCAMPlusPlus"), ("hirescam", "HiResCAM"),
                           ("layercam", "LayerCAM"), ("xgradcam", "XGradCAM"), ("eigencam", "EigenCAM"),
                           ("eigengradcam", "EigenGradCAM")):
    METHODS.add(_name, _library_method(_class_name), library_class=_class_name)
del _name, _class_name


def method_names() -> list[str]:
    """The CAM method names ``--cam`` accepts."""
    return METHODS.names()


def method_class(name: str) -> type:
    """The pytorch-grad-cam class of CAM method ``name``; a ``UserError`` naming close ones."""
    return METHODS.get(name, what=f"--cam {name!r}")()


@METHODS.register("scorecam", library_class="ScoreCAM")
def _batched_score_cam():
    """ScoreCAM whose channel scoring is batched across images and silent.

    The library's version scores one image at a time, calls ``.item()`` per forward
    output and draws a tqdm bar per image; the weights computed here are the same
    (softmax over channels of the target score of the input masked by each channel).
    """
    import torch
    from pytorch_grad_cam import ScoreCAM

    class BatchedScoreCAM(ScoreCAM):
        batch_size = 64

        def get_cam_weights(self, input_tensor, target_layer, targets, activations, grads):
            with torch.no_grad():
                acts = torch.from_numpy(activations).to(self.device)
                up = torch.nn.functional.interpolate(acts, size=input_tensor.shape[-2:], mode="bilinear",
                                                     align_corners=True)
                flat = up.flatten(2)
                lo, hi = flat.min(-1).values[..., None, None], flat.max(-1).values[..., None, None]
                up = (up - lo) / (hi - lo + 1e-8)
                n_img, n_ch = up.shape[:2]
                scores = torch.empty(n_img, n_ch)
                pairs = [(b, c) for b in range(n_img) for c in range(n_ch)]
                for start in range(0, len(pairs), self.batch_size):
                    chunk = pairs[start:start + self.batch_size]
                    bs = torch.tensor([b for b, _ in chunk], device=self.device)
                    cs = torch.tensor([c for _, c in chunk], device=self.device)
                    out = self.model(input_tensor[bs] * up[bs, cs][:, None])
                    for row, (b, c) in enumerate(chunk):
                        scores[b, c] = targets[b](out[row]).float().cpu()
                return torch.softmax(scores, dim=-1).numpy()

    return BatchedScoreCAM


# --------------------------------------------------------------------------- targets
@TARGETS.register("predicted")
def _predicted_class(logits, label: int, top_k: int) -> list[int]:
    return [int(logits.detach().argmax(-1))]


@TARGETS.register("true")
def _true_class(logits, label: int, top_k: int) -> list[int]:
    """The given class; the predicted one for a species the classifier never saw (label < 0)."""
    return [label] if label >= 0 else _predicted_class(logits, label, top_k)


@TARGETS.register("topk")
def _top_classes(logits, label: int, top_k: int) -> list[int]:
    k = max(1, min(top_k, logits.shape[-1]))
    return logits.detach().topk(k, dim=-1).indices.reshape(-1).tolist()


class CamTarget:
    """What one image's CAM explains: a class logit, or the sum of the top-k logits.

    The classes are chosen from the image's own logits the first time the target sees
    them (pytorch-grad-cam calls it on the forward it already makes), so a CAM costs one
    forward; later calls (ScoreCAM's masked inputs) reuse the locked classes.
    """

    def __init__(self, rule: str = "predicted", label: int = -1, top_k: int = 3):
        self.rule, self.label, self.top_k = rule, int(label), int(top_k)
        self.categories: list[int] | None = None

    def lock(self, logits) -> list[int]:
        if self.categories is None:
            rule = TARGETS.get(self.rule, what=f"--cam-target {self.rule!r}")
            self.categories = rule(logits, self.label, self.top_k)
        return self.categories

    def __call__(self, output):
        cats = self.lock(output) if self.categories is None else self.categories
        return output[..., cats].sum(-1)


def make_targets(n: int, rule: str = "predicted", labels=None, top_k: int = 3) -> list[CamTarget]:
    """One CAM target per image of a batch of ``n``.

    ``true`` uses ``labels`` where it is a training class (>= 0) and falls back to the
    predicted class for the others (e.g. a species the classifier never saw).
    """
    TARGETS.get(rule, what=f"--cam-target {rule!r}")
    if rule == "true" and labels is None:
        raise UserError("--cam-target true needs labels (the batch has none)")
    labs = labels.tolist() if labels is not None else [-1] * n
    return [CamTarget(rule, lab, top_k) for lab in labs]


def cam_input_size(image_size: int, cam_scale: float) -> int:
    """The side the CAM reads photos at: the classifier's training size x ``cam_scale``.

    A CNN takes any input size; reading the photo larger than the classifier was trained at
    multiplies the cells of every layer (2 gives a 64 px classifier's stride-8 layer 16 x 16).
    """
    if isinstance(cam_scale, bool) or not isinstance(cam_scale, (int, float)) or not 0.25 <= cam_scale <= 8:
        raise UserError(f"--cam-scale {cam_scale!r}: a number in [0.25, 8] (the CAM reads the photo at "
                        "this multiple of the classifier's input size)")
    return max(8, int(round(image_size * cam_scale)))


def check_tta(name: str) -> tuple[tuple[bool, float], ...]:
    """The views of ``--tta name``; a ``UserError`` naming close ones."""
    return TTA.get(name, what=f"--tta {name!r}")


def tta_cams(extractor: "CamExtractor", images, tta: str = "none", target: str = "predicted",
             top_k: int = 3) -> CamOutput:
    """CAMs averaged over the views of ``tta`` (flipped and/or rescaled inputs), each view's
    map brought back to the original's frame; every view explains the original's classes."""
    import torch
    import torch.nn.functional as F

    views = check_tta(tta)
    base = extractor(images, target=target, top_k=top_k)
    if len(views) == 1:
        return base
    total = torch.from_numpy(base.cams).clone()
    for flip, scale in views[1:]:
        x = images.flip(-1) if flip else images
        if scale != 1.0:
            x = F.interpolate(x, scale_factor=scale, mode="bilinear", align_corners=False)
        maps = torch.from_numpy(extractor(x, classes=base.targets).cams)[:, None]
        if maps.shape[-2:] != total.shape[-2:]:
            maps = F.interpolate(maps, size=total.shape[-2:], mode="bilinear", align_corners=False)
        total += (maps.flip(-1) if flip else maps)[:, 0]
    lo = total.flatten(1).min(1).values[:, None, None]
    hi = total.flatten(1).max(1).values[:, None, None]
    cams = ((total - lo) / (hi - lo).clamp_min(1e-8)).numpy().astype(np.float32)
    return CamOutput(cams=cams, logits=base.logits, targets=base.targets)


# --------------------------------------------------------------------------- extractor
@dataclass
class CamOutput:
    cams: np.ndarray       # B x S x S float32, each min-max scaled to [0, 1]
    logits: "object"       # B x C torch tensor (detached)
    targets: list[list[int]]  # classes each CAM explains


def _graph_leaf(module, args, output):
    """A forward hook making a target layer's output the start of the autograd graph.

    A gradient CAM needs gradients at its target layer only; with the input and weights
    not requiring any, backward stops there instead of running down to the input through
    the stem (at a large input the costliest layers). The values above are the same."""
    import torch

    if isinstance(output, torch.Tensor) and not output.requires_grad:
        return output.detach().requires_grad_(True)
    return None  # already in the graph (a later target layer), or not a tensor


class CamExtractor:
    """Batched CAMs of ``model`` for one method, target layer(s) and reshape rule.

    The pytorch-grad-cam object is built once (its constructor walks the whole model to
    switch it to eval mode, a cost per call that batch-1 use would feel), but its hooks
    are registered at the start of each call and removed at its end.
    """

    def __init__(self, model, method: str = "gradcam", target_layers: str | Sequence[str] | None = None,
                 reshape: str = "auto", image_size: int = 224, score_batch_size: int = 64,
                 input_size: int | None = None):
        self.model = model
        self.method = method
        self.cam_class = method_class(method)
        # the default layer is chosen at the classifier's own size, whatever size the CAM reads
        self.layers, self.layer_names = resolve_target_layers(model, target_layers, image_size)
        self.input_size = int(input_size or image_size)
        self.reshape_transform = resolve_reshape(model, self.layers, self.layer_names, reshape, self.input_size)
        #: (rows, cols) of the target layer's map at ``input_size``: the CAM's real resolution
        self.cells = layer_cells(model, self.layers, self.reshape_transform, self.input_size)
        self.score_batch_size = score_batch_size
        self._params = list(model.parameters())
        was_training = model.training
        self._cam = self.cam_class(model=model, target_layers=self.layers, reshape_transform=self.reshape_transform)
        self._cam.activations_and_grads.release()  # no hooks between calls
        model.train(was_training)

    def __call__(self, images, target: str = "predicted", labels=None, top_k: int = 3,
                 classes: Sequence[Sequence[int]] | None = None) -> CamOutput:
        """CAMs of a batch (B x 3 x S x S, normalised); works inside inference_mode.
        ``classes``: each image's explained classes, fixed (a TTA view explains the original's)."""
        import torch
        from pytorch_grad_cam import ActivationsAndGradients

        cam = self._cam
        params = self._params
        flags = [p.requires_grad for p in params]
        was_training = self.model.training
        hooks, leaves = None, []
        # Lightning's predict/test run under inference_mode; CAM needs a graph. Weights
        # need no gradient (only activations do), which also skips their backward work.
        with torch.inference_mode(False), torch.enable_grad():
            try:
                if cam.uses_gradients:  # the graph starts at the first target layer reached
                    leaves = [layer.register_forward_hook(_graph_leaf, prepend=True) for layer in self.layers]
                for p in params:
                    p.requires_grad_(False)
                if was_training:
                    self.model.eval()
                # The model may have moved (Lightning moves it after __init__).
                cam.device = params[0].device if params else images.device
                hooks = cam.activations_and_grads = ActivationsAndGradients(
                    self.model, self.layers, self.reshape_transform, True)
                x = images.detach().clone()  # a clone leaves inference mode
                targets = make_targets(len(x), target, labels, top_k)
                for t, fixed in zip(targets, classes or ()):
                    t.categories = list(fixed)
                if self.method == "scorecam":
                    # No loss is computed, so lock each target's classes on a plain forward
                    # first (ScoreCAM scores masked inputs with them).
                    with torch.no_grad():
                        for t, row in zip(targets, self.model(x)):
                            t.lock(row)
                    cam.batch_size = self.score_batch_size
                maps = cam(input_tensor=x, targets=targets)
                logits = cam.outputs.detach()
            finally:
                if hooks is not None:
                    hooks.release()
                for leaf in leaves:
                    leaf.remove()
                cam.outputs = None  # holds the retained autograd graph otherwise
                for p, flag in zip(params, flags):
                    p.requires_grad_(flag)
                if was_training:
                    self.model.train()
        maps = np.nan_to_num(np.asarray(maps, dtype=np.float32), nan=0.0)
        return CamOutput(cams=maps, logits=logits, targets=[t.lock(row) for t, row in zip(targets, logits)])
