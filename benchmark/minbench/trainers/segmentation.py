"""``SegmentationTask``: a trained classifier's CAMs, thresholded, as mineral masks.

No mask supervision: the classifier is trained for species (a few-shot task) and frozen;
its class-activation map (``minbench.models.cam``) upsampled to the photo's resolution and
thresholded (``minbench.models.masking``) is the mask. The predict step yields the masks
(with the CAM upsampled to the photo's resolution: the score map the mask is cut from, and
the low-resolution CAMs); ``MaskWriter`` writes them as a submission, which the scorer
scores against the hand-drawn masks (``minbench.pipelines.segmentation``): this module
reports no metric.

Batches are the data module's segmentation batches: ``image`` B x 3 x S x S (a plain
resize of the whole photo, so a CAM maps back exactly), ``orig_size`` B x 2 (H, W),
``sample_id``; sealed (``minbench.data.seal``): no species, no mask. So ``cam_target='true'``
(explain each photo's true class) is refused: the true class of a test photo is the
answer, which only the scorer reads (``minbench.models.cam.CAM_TRUE_TARGET_REFUSED``).
"""

from __future__ import annotations

import os
import shutil
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from lightning.pytorch.callbacks import BasePredictionWriter

from minbench.errors import UserError
from minbench.models import cam as cams
from minbench.models import masking
from minbench.models import refine as refinements
from minbench.scoring.formats.mask_pngs import MAPS_DIR, write_mask, write_score_map  # the format's writers
from minbench.trainers.base import BaseTask

def read_mask(path: str | Path, level: int = 0) -> np.ndarray:
    """A mask file as bool H x W, by one of ``minbench.data.masks``' two rules.

    ``level=0``: the submission rule (a run's own or a submitted PNG, nonzero = mineral);
    ``level=127``: the truth rule (the scorer's ground truth). A ``UserError`` when refused.
    """
    from minbench.data.masks import read_submission_mask, read_truth_mask

    return read_truth_mask(path) if level else read_submission_mask(path)



def load_classifier(path: str | Path):
    """A ``ClassificationTask`` checkpoint to (network, class names); safe loading only."""
    path = Path(path)
    import torch

    from minbench.trainers.classification import ClassificationTask

    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch.load raises many types for a file that is not a checkpoint
        raise UserError(f"--classifier {path}: not a loadable checkpoint ({type(exc).__name__}: "
                        f"{str(exc).splitlines()[0] if str(exc) else ''})") from None
    hp = raw.get("hyper_parameters") if isinstance(raw, dict) else None
    if not isinstance(hp, dict) or "state_dict" not in raw or "backbone" not in hp:
        raise UserError(f"--classifier {path}: not a minbench classifier checkpoint "
                        "(from `minbench run --task fewshot-...`)")
    if "head" in hp:
        raise UserError(f"--classifier {path}: a training-free {hp['head']} baseline has no trained "
                        "head for a CAM to explain; use a fine-tuned classifier")
    # Rebuild without the original pretrained-weights file: the checkpoint holds the weights.
    hp = {**hp, "pretrained": False, "weights": None}
    task = ClassificationTask(**{k: v for k, v in hp.items() if k != "_instantiator"})
    try:
        missing, unexpected = task.load_state_dict(raw["state_dict"], strict=False)
    except RuntimeError as exc:  # shape mismatches
        detail = str(exc).splitlines()[1].strip() if len(str(exc).splitlines()) > 1 else str(exc)
        raise UserError(f"--classifier {path}: weights do not fit {hp['backbone']} ({detail})") from None
    if missing or unexpected:
        raise UserError(f"--classifier {path}: weights do not fit {hp['backbone']} "
                        f"(missing {missing[:2]}, unexpected {unexpected[:2]})")
    return task.model.eval(), task.classes


@dataclass
class SampleMask:
    """One image's result: its CAM (S x S, [0, 1]), the CAM upsampled to (H, W) (the score
    map submitted beside the mask), mask at (H, W) (None before a ``val`` level is chosen),
    predicted and explained classes."""

    sample_id: str
    cam: np.ndarray
    mask: np.ndarray | None
    pred: int
    targets: list[int]
    score: np.ndarray | None = None


class SegmentationTask(BaseTask):
    """Zero-shot segmentation by a frozen classifier's thresholded CAM.

    Args:
        classifier: the trained classification network (a timm model: images -> logits),
            or the path of a ``ClassificationTask`` checkpoint (``minbench run --task
            fewshot-...`` writes them).
        classes: its class names (index = logit); read from the checkpoint when
            ``classifier`` is one.
        cam: CAM method (``minbench.models.cam.METHODS``: gradcam, gradcam++, hirescam,
            layercam, xgradcam, eigencam, eigengradcam, scorecam).
        cam_target: ``predicted`` class or ``topk`` (sum of the top-k logits); ``true``
            is refused (``minbench.models.cam.CAM_TRUE_TARGET_REFUSED``).
        top_k: k of ``topk``.
        target_layer: module name(s), comma separated; None = the family default.
        reshape: ``auto``, ``none``, ``vit`` (tokens -> grid) or ``nhwc``.
        threshold: ``otsu``, ``fixed`` (CAM >= value), ``percentile`` or ``val`` (the level
            chosen on the validation part: ``tune``).
        threshold_value: the level of ``fixed`` (0-1) or ``percentile`` (0-100).
        refine: ``none``, ``grabcut`` or ``superpixels`` (``minbench.models.refine``): the
            CAM refined by the photo before it is upsampled and cut.
        refine_args: the refinement's settings (e.g. grabcut's ``sure_fg``, ``sure_bg``,
            ``iterations``); the ones not given keep their defaults.
        upsample: ``bilinear``, ``bicubic`` or ``nearest`` (CAM -> the photo's H x W).
        image_size: the classifier's training input side (the default target layer is
            chosen there).
        cam_scale: the CAM reads the photo at ``image_size x cam_scale`` (``input_size``,
            the side the data module resizes to): a CNN takes any size, and 2 doubles the
            map's cells (16 x 16 for a 64 px classifier's stride-8 layer).
        tta: ``none``, ``flip`` or ``flip_scale``: CAMs averaged over flipped (and 1.5x)
            views (``minbench.models.cam.TTA``).
        task: the task card (``segmentation``).
    """

    #: a frozen classifier: no optimiser, no training loop
    trainable = False

    def __init__(self, classifier: torch.nn.Module | str | Path, *, classes: Sequence[str] | None = None,
                 cam: str = "gradcam", cam_target: str = "predicted", top_k: int = 3,
                 target_layer: str | None = None, reshape: str = "auto", threshold: str = "otsu",
                 threshold_value: float | None = None, upsample: str = "bilinear", image_size: int = 224,
                 cam_scale: float = 1.0, tta: str = "none", score_batch_size: int = 64,
                 task: str = "segmentation", refine: str = "none", refine_args: dict | None = None):
        if classifier is None:
            raise UserError("model.init_args.classifier: give a classifier checkpoint (or a network)")
        if cam_target == "true":
            from minbench.models.cam import CAM_TRUE_TARGET_REFUSED

            raise UserError(f"model.init_args.cam_target: {CAM_TRUE_TARGET_REFUSED}")
        if isinstance(classifier, (str, Path)):
            classifier, ckpt_classes = load_classifier(classifier)
            classes = classes if classes is not None else ckpt_classes
        # configure_models() runs inside BaseTask.__init__ and needs the network, which is
        # not a hyperparameter; a plain attribute set before Module.__init__ would be lost.
        self.__dict__["_pending_classifier"] = classifier
        super().__init__(task, ignore=("classifier",))
        self.classes = list(classes) if classes is not None else None

    def configure_models(self) -> None:
        hp = self.hparams
        if self.card.kind != "segmentation":
            raise UserError(f"--task {hp.task!r} is a {self.card.kind} task, not a segmentation task")
        cams.method_class(hp.cam)  # fail on a bad name now, not mid-run
        cams.TARGETS.get(hp.cam_target, what=f"--cam-target {hp.cam_target!r}")
        masking.check_upsample(hp.upsample)
        cams.check_tta(hp.tta)
        self.input_size = cams.cam_input_size(hp.image_size, hp.cam_scale)
        self.threshold_value = masking.check_threshold(hp.threshold, hp.threshold_value)
        if masking.is_tuned(hp.threshold) and hp.threshold_value is not None:
            raise UserError(f"model.init_args.threshold_value: --threshold {hp.threshold} chooses its level on "
                            "the validation part; give no value")
        if masking.is_tuned(hp.threshold) and self.card.validation is None:
            raise UserError(f"--threshold {hp.threshold}: task {self.card.id} has no validation part (split.validation)")
        self.refine_settings = refinements.check_refine(hp.refine, hp.refine_args)
        self.model = self.__dict__.pop("_pending_classifier").eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.extractor = cams.CamExtractor(self.model, hp.cam, hp.target_layer, hp.reshape, hp.image_size,
                                           hp.score_batch_size, input_size=self.input_size)

    # train() would put BatchNorm back into training mode; the classifier stays frozen.
    def train(self, mode: bool = True):
        super().train(mode)
        self.model.eval()
        return self

    def make_masks(self, batch: dict[str, Any]) -> list[SampleMask]:
        """CAMs of a batch and their masks at each image's original (H, W)."""
        hp = self.hparams
        images = batch["image"]
        sids = [str(s) for s in batch["sample_id"]]
        sizes = batch["orig_size"].tolist() if "orig_size" in batch else [list(images.shape[-2:])] * len(sids)
        out = cams.tta_cams(self.extractor, images, hp.tta, target=hp.cam_target, top_k=hp.top_k)
        preds = out.logits.argmax(-1).tolist()
        results = []
        photos = self._photos(images) if hp.refine != "none" else [None] * len(sids)
        for sid, cam, photo, (h, w), pred, tgt in zip(sids, out.cams, photos, sizes, preds, out.targets):
            # the map the mask is cut from, submitted beside it (PxAP scores it over every threshold)
            score = masking.upsample_cam(refinements.refine(hp.refine, photo, cam, self.refine_settings) if photo is not None else cam,
                                         (h, w), hp.upsample)
            # ``val`` before its level is chosen (the validation pass): the map alone
            mask = None if self.threshold_value is None and masking.is_tuned(hp.threshold) else \
                masking.threshold_cam(score, hp.threshold, self.threshold_value)
            results.append(SampleMask(sid, cam, mask, int(pred), list(tgt), score))
        return results

    def _photos(self, images: torch.Tensor) -> list[np.ndarray]:
        """The batch's photos as uint8 S x S x 3 (the normalisation undone): what a refinement
        reads, at the CAM's own resolution, so the two align pixel for pixel."""
        from minbench.data.augment import IMAGENET_MEAN, IMAGENET_STD
        from minbench.models.colour_features import to_srgb

        rgb = to_srgb(images, self.context.mean if self.context else IMAGENET_MEAN,
                      self.context.std if self.context else IMAGENET_STD).permute(0, 2, 3, 1)
        return list((rgb * 255 + 0.5).to(torch.uint8).cpu().numpy())

    def tune(self, scores: Sequence[np.ndarray], truths: Sequence[np.ndarray]) -> dict[str, Any]:
        """Choose the ``val`` level on the validation part's maps and masks (a no-op for the
        other rules); returns what was chosen, for the run's record."""
        if not masking.is_tuned(self.hparams.threshold):
            return {}
        level, curve = masking.choose_val_level(self.card, scores, truths)
        self.threshold_value = level
        return {"threshold_value": level, "grid": {f"{k:g}": v for k, v in curve.items()}}

    def predict_step(self, batch: dict[str, Any], batch_idx: int, dataloader_idx: int = 0) -> list[SampleMask]:
        return self.make_masks(batch)


class MaskWriter(BasePredictionWriter):
    """Writes each predicted mask as ``<sample_id>.png`` with its score map (the upsampled
    CAM, 16-bit) as ``maps/<sample_id>.png`` (``mask_pngs``), and the low-resolution CAM as
    an 8-bit PNG in ``cam_dir``.

    Files go to a hidden folder beside ``out_dir`` that is renamed onto it when the whole
    prediction has finished, so an interrupted run never leaves a partial submission.
    Encoding and writing run in a pool of ``threads`` (zlib and Pillow release the GIL), so
    they overlap the next batch's CAM; the bytes are the format writers' own.
    ``begin``/``write``/``finish`` are the whole path without a Trainer (``bench cam``).
    """

    #: results waiting in the pool at most, per thread: bounds memory (a score map is 3 MB)
    QUEUE_PER_THREAD = 8

    def __init__(self, out_dir: str | Path, cam_dir: str | Path | None = None, threads: int | None = None):
        super().__init__(write_interval="batch")
        self.out_dir = Path(out_dir)
        self.cam_dir = Path(cam_dir) if cam_dir is not None else None
        self.threads = max(1, int(threads or min(4, os.cpu_count() or 1)))
        self.written: list[str] = []
        self.preds: dict[str, int] = {}
        self._pool: ThreadPoolExecutor | None = None
        self._pending: deque[Future] = deque()

    @staticmethod
    def _partial(folder: Path) -> Path:
        return folder.with_name(f".{folder.name}.partial")

    def begin(self, folders: bool = True) -> None:
        """Fresh hidden folders (one process makes them) and an empty pool (every process)."""
        if folders:
            for folder in filter(None, (self.out_dir, self.cam_dir)):
                shutil.rmtree(self._partial(folder), ignore_errors=True)
                self._partial(folder).mkdir(parents=True)
            (self._partial(self.out_dir) / MAPS_DIR).mkdir()
        self.written, self.preds = [], {}
        self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="mask-writer")
        self._pending.clear()

    def write(self, prediction: Sequence[SampleMask]) -> None:
        """Queue one batch's files; waits for the oldest when the queue is full."""
        for r in prediction:
            self._pending.append(self._pool.submit(self._write_one, r))
            self.written.append(r.sample_id)
            self.preds[r.sample_id] = r.pred
        while len(self._pending) > self.threads * self.QUEUE_PER_THREAD:
            self._pending.popleft().result()

    def finish(self, publish: bool = True) -> None:
        """Wait for every file (re-raising a failed write), then rename the folders into place."""
        try:
            while self._pending:
                self._pending.popleft().result()
        finally:
            if self._pool is not None:
                self._pool.shutdown(cancel_futures=True)
                self._pool = None
        if publish:
            self._publish()

    def _publish(self) -> None:
        for folder in filter(None, (self.out_dir, self.cam_dir)):
            if folder.exists():
                shutil.rmtree(folder)
            os.replace(self._partial(folder), folder)

    def _write_one(self, r: SampleMask) -> None:
        from PIL import Image

        write_mask(self._partial(self.out_dir) / f"{r.sample_id}.png", r.mask)
        if r.score is not None:
            write_score_map(self._partial(self.out_dir), r.sample_id, r.score)
        if self.cam_dir is not None:
            u8 = np.clip(r.cam * 255.0 + 0.5, 0, 255).astype(np.uint8)
            Image.fromarray(u8, mode="L").save(self._partial(self.cam_dir) / f"{r.sample_id}.png")

    def on_predict_start(self, trainer, pl_module) -> None:
        if trainer.is_global_zero:
            self.begin()
        trainer.strategy.barrier()
        if not trainer.is_global_zero:
            self.begin(folders=False)

    def write_on_batch_end(self, trainer, pl_module, prediction, batch_indices, batch, batch_idx,
                           dataloader_idx=0) -> None:
        self.write(prediction)

    def on_exception(self, trainer, pl_module, exception) -> None:
        if self._pool is not None:  # stop queued writes; the hidden folder is never published
            self._pending.clear()
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def on_predict_end(self, trainer, pl_module) -> None:
        self.finish(publish=False)
        trainer.strategy.barrier()
        if trainer.is_global_zero:
            self._publish()
