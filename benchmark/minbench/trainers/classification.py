"""Few-shot species classification: a timm backbone fine-tuned (``ClassificationTask``)
or frozen with a head fitted in one pass (``FeatureBaselineTask``: prototype, kNN or logistic).

Both log the task card's metrics per stage (``train/``, ``val/``, ``test/`` + the card's
names, e.g. ``val/top1``; built by ``minbench.scoring.training_metrics.build_torchmetrics``) and
their predict step yields, per image, the ranked species (best first):
``{"index", "sample_id", "ranked" (B x k class indices), "scores" (B x k), "species"
(B lists of k names)}`` with ``k = min(card.max_ranks, num_classes)``.

Batches are the data module's dicts: ``image`` (normalised B x 3 x S x S), ``label``
(int64, -1 = not a training class: left out of the loss and the metrics), ``index``,
``sample_id``. Test batches are sealed (no ``label``): the test split is predicted, and
scored by the scorer from the submission, never in a test step (``trainer.test`` on it
refuses; on a labelled loader of the user's own it logs ``test/`` metrics).
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import nn

from minbench.cards import get_card
from minbench.errors import UserError
from minbench.dist import gather_objects
from minbench.trainers.base import BaseTask


#: the heads ``FeatureBaselineTask`` fits on frozen features
HEADS = ("prototype", "knn", "logistic")
#: why ``trainer.test`` has nothing to compute (the sealed protocol, ``minbench.data.seal``)
SEALED_TEST = ("trainer.test: the test split is sealed (its batches carry no labels); predict it, "
               "write the submission and score it with the scorer (`minbench score`, `Task.score`)")


class ClassificationTask(BaseTask):
    """A timm backbone with a ``num_classes`` head, trained with cross-entropy.

    Args:
        task: a classification task id (its card names the metrics).
        backbone: timm name or minbench alias (``minbench.models.backbones.ALIASES``).
        num_classes: number of training classes (the data module's ``num_classes``).
        classes: class names, index = label (the data module's ``classes``), so
            predictions carry species names and checkpoints are self-describing.
        pretrained: timm hub weights (fails at once without network: use ``weights``).
        weights: local weights file for the backbone (state dict, safetensors, minbench ckpt).
        model_kwargs: extra ``timm.create_model`` arguments (``drop_rate``, ``channels`` ...).
        label_smoothing: cross-entropy label smoothing.
        freeze_backbone: train only the head (a linear probe).
        channels_last: memory format for the convolutions (faster on some CPUs/GPUs).
        optimizer, lr, weight_decay, scheduler, warmup_fraction: see ``BaseTask``.
    """

    def __init__(self, task: str = "fewshot-10", backbone: str = "resnet10t", num_classes: int = 10,
                 classes: Sequence[str] | None = None, pretrained: bool = False, weights: str | None = None,
                 model_kwargs: dict[str, Any] | None = None, label_smoothing: float = 0.0,
                 freeze_backbone: bool = False, channels_last: bool = False, optimizer: str = "adamw",
                 lr: float = 1e-3, weight_decay: float = 0.05, scheduler: str = "onecycle",
                 warmup_fraction: float = 0.1) -> None:
        if classes is not None:
            classes = [str(c) for c in classes]
            if len(classes) != num_classes:
                raise UserError(f"model.init_args: {len(classes)} class names for num_classes={num_classes}")
        kind = get_card(task).kind
        if kind not in ("classification", "zeroshot"):
            raise UserError(f"--task {task}: {type(self).__name__} serves classification tasks, not {kind}")
        super().__init__(task, optimizer=optimizer, lr=lr, weight_decay=weight_decay, scheduler=scheduler,
                         warmup_fraction=warmup_fraction)

    # --- configuration ----------------------------------------------------------------------
    @property
    def classes(self) -> list[str]:
        names = self.hparams.get("classes")
        return list(names) if names is not None else [str(i) for i in range(self.hparams.num_classes)]

    @property
    def max_ranks(self) -> int:
        return min(self.card.max_ranks, int(self.hparams.num_classes))

    def configure_models(self) -> None:
        from minbench.models.backbones import create_backbone

        hp = self.hparams
        self.model = create_backbone(hp.backbone, num_classes=hp.num_classes, pretrained=hp.pretrained,
                                     weights=hp.weights, **dict(hp.model_kwargs or {}))
        if hp.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        if hp.freeze_backbone:
            head = set(id(p) for p in self.model.get_classifier().parameters())
            for p in self.model.parameters():
                p.requires_grad_(id(p) in head)

    def configure_losses(self) -> None:
        self.criterion = nn.CrossEntropyLoss(label_smoothing=self.hparams.label_smoothing, ignore_index=-1)

    def configure_metrics(self) -> None:
        from minbench.scoring.training_metrics import build_torchmetrics

        self.set_stage_metrics(build_torchmetrics(self.card, int(self.hparams.num_classes)))

    # --- steps ------------------------------------------------------------------------------
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if self.hparams.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        return self.model(images)

    def _step(self, batch: dict[str, Any], stage: str) -> torch.Tensor:
        logits = self(batch["image"])
        target = batch["label"]
        loss = self.criterion(logits, target)
        known = target >= 0
        n = int(known.sum())
        self.log(f"{stage}/loss", loss, on_step=stage == "train", on_epoch=True, batch_size=max(n, 1),
                 sync_dist=stage != "train", prog_bar=stage == "train")
        if n:
            self.log_stage_metrics(stage, logits[known].detach(), target[known])
        return loss

    def training_step(self, batch, batch_idx):
        if batch["image"].shape[0] < 2 and self._has_batchnorm:
            # Batch norm cannot train on a batch of one (the data module keeps the last
            # partial batch of an epoch): skip it rather than crash.
            return None
        return self._step(batch, "train")

    @property
    def _has_batchnorm(self) -> bool:
        return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in self.model.modules())

    def validation_step(self, batch, batch_idx):
        self._step(batch, "val")

    def test_step(self, batch, batch_idx):
        if "label" not in batch:  # the benchmark's test split: its labels are the scorer's
            raise UserError(SEALED_TEST)
        self._step(batch, "test")  # a labelled loader of the user's own

    def predict_step(self, batch, batch_idx, dataloader_idx: int = 0) -> dict[str, Any]:
        scores = self.class_scores(batch["image"])
        top, ranked = scores.topk(self.max_ranks, dim=1)
        names = self.classes
        ranked_cpu = ranked.cpu()
        return {"index": batch["index"].cpu(), "sample_id": list(batch["sample_id"]),
                "ranked": ranked_cpu, "scores": top.float().cpu(),
                "species": [[names[i] for i in row] for row in ranked_cpu.tolist()]}

    def class_scores(self, images: torch.Tensor) -> torch.Tensor:
        """Per-class scores (higher = more likely); softmax probabilities here."""
        return self(images).softmax(dim=1)


class FeatureBaselineTask(ClassificationTask):
    """A frozen backbone's pooled features and a head fitted to them at once.

    "Training" is one pass over the training images (no augmentation wanted: set the data
    module's ``augment: false``) that collects their embeddings; the head is fitted from
    all ranks' embeddings before the first evaluation. No optimiser steps through the
    backbone; the logistic head runs its own full-batch L-BFGS on the embeddings.

    The backbone is a timm model, or a feature extractor without weights
    (``minbench.models.backbones.HANDCRAFTED_BACKBONES``: ``colour-stats``, the colour-only reference).

    Args:
        head: ``prototype`` (nearest class mean), ``knn`` or ``logistic`` (L2-regularised
            multinomial logistic regression on standardised features,
            ``minbench.models.feature_baselines.LogisticHead``).
        k, temperature: the kNN's neighbours and vote temperature.
        l2: the logistic head's penalty (scikit-learn's ``1 / C``).
        (others as ``ClassificationTask``; the backbone is used without its classifier)
    """

    trainable = False

    def __init__(self, task: str = "fewshot-10", backbone: str = "resnet50", num_classes: int = 10,
                 classes: Sequence[str] | None = None, pretrained: bool = True, weights: str | None = None,
                 model_kwargs: dict[str, Any] | None = None, head: str = "prototype", k: int = 20,
                 temperature: float = 0.07, l2: float = 1.0, channels_last: bool = False) -> None:
        if head not in HEADS:
            raise UserError(f"model.init_args.head: {head!r} is not one of {', '.join(HEADS)}")
        if head == "logistic" and not l2 > 0:
            raise UserError(f"model.init_args.l2: {l2!r} must be positive")
        super().__init__(task=task, backbone=backbone, num_classes=num_classes, classes=classes,
                         pretrained=pretrained, weights=weights, model_kwargs=model_kwargs,
                         channels_last=channels_last)
        self.automatic_optimization = False
        self._feats: list[torch.Tensor] = []
        self._labels: list[torch.Tensor] = []
        self._index: list[torch.Tensor] = []

    def configure_models(self) -> None:
        from minbench.models.backbones import create_backbone
        from minbench.models.feature_baselines import KNNHead, LogisticHead, PrototypeHead

        hp = self.hparams
        self.model = create_backbone(hp.backbone, num_classes=0, pretrained=hp.pretrained, weights=hp.weights,
                                     **dict(hp.model_kwargs or {}))
        self.model.requires_grad_(False)
        self.head = (PrototypeHead(hp.num_classes) if hp.head == "prototype"
                     else KNNHead(hp.num_classes, k=hp.k, temperature=hp.temperature) if hp.head == "knn"
                     else LogisticHead(hp.num_classes, l2=hp.l2))
        # DistributedDataParallel refuses a module with nothing to train; this unused
        # scalar lets the same recipe run under DDP (no backward ever touches it).
        self.ddp_anchor = nn.Parameter(torch.zeros(()))

    def configure_data(self, context) -> None:
        """A feature extractor that reads pixel values (``backbone: colour-stats``) is told the
        normalisation the batches were made with (the data's ``TaskContext.mean/std``)."""
        super().configure_data(context)
        set_normalisation = getattr(self.model, "set_input_normalisation", None)
        if set_normalisation is not None and context.mean and context.std:
            set_normalisation(context.mean, context.std)

    @torch.no_grad()
    def embed(self, images: torch.Tensor) -> torch.Tensor:
        # Frozen: batch-norm statistics and dropout stay in inference mode even while
        # Lightning puts the module in training mode (it sets flags without calling train()).
        self.model.eval()
        if self.hparams.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        return self.model(images)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(images))

    def class_scores(self, images: torch.Tensor) -> torch.Tensor:
        if not self.head.fitted:
            raise RuntimeError("the feature baseline's head is not fitted: run trainer.fit first")
        return self(images)

    def training_step(self, batch, batch_idx):
        known = batch["label"] >= 0
        self._feats.append(self.embed(batch["image"][known]).float())
        self._labels.append(batch["label"][known])
        self._index.append(batch["index"][known])
        return None

    def _step(self, batch, stage):
        self._fit_head_if_pending()
        if not self.head.fitted:  # Lightning's sanity check runs validation before the one pass
            return None
        target = batch["label"]
        known = target >= 0
        if known.any():
            self.log_stage_metrics(stage, self(batch["image"][known]), target[known])
        return None

    def on_train_epoch_start(self) -> None:
        self._feats, self._labels, self._index = [], [], []

    def on_train_epoch_end(self) -> None:
        self._fit_head_if_pending()
        self.trainer.should_stop = True  # one pass is the whole "training"

    def on_validation_epoch_start(self) -> None:
        self._fit_head_if_pending()

    def _fit_head_if_pending(self) -> None:
        if not self._feats:
            return
        feats, labels, index = torch.cat(self._feats), torch.cat(self._labels), torch.cat(self._index)
        self._feats, self._labels, self._index = [], [], []
        if self.trainer is not None and self.trainer.world_size > 1:
            feats, labels, index = _gather_unique(feats, labels, index)
        order = torch.argsort(index)  # the same bank whatever the number of ranks
        self.head.fit(feats[order], labels[order])

    def configure_optimizers(self):
        return None

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint.pop("optimizer_states", None)


def _gather_unique(feats: torch.Tensor, labels: torch.Tensor, index: torch.Tensor):
    """All ranks' embeddings, each training row once (the distributed sampler pads
    shards with repeats), back on this rank's device."""
    from minbench.data.datasets import first_occurrences

    device = feats.device
    parts = gather_objects([(feats.cpu(), labels.cpu(), index.cpu())])
    feats, labels, index = (torch.cat([p[k] for p in parts]) for k in range(3))
    keep = first_occurrences(index)
    return feats[keep].to(device), labels[keep].to(device), index[keep].to(device)
