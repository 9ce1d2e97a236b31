"""Training-free classifiers on frozen backbone features: nearest class prototype and
k nearest neighbours (MineralNet's next step after fine-tuning: no gradient at all).

Both work on L2-normalised embeddings and score by cosine similarity. They are fitted
from the whole training set's embeddings at once (``fit``), and keep what they learnt
in buffers, so a checkpoint carries them (buffers are resized on load: their shapes
depend on the data).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class _FittedBuffers(nn.Module):
    """Buffers whose shapes are only known after ``fit``: take the checkpoint's shapes on load."""

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys,
                              unexpected_keys, error_msgs):
        for name, buf in list(self._buffers.items()):
            key = prefix + name
            if buf is not None and key in state_dict and state_dict[key].shape != buf.shape:
                self._buffers[name] = torch.empty_like(state_dict[key], device=buf.device)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys,
                                      unexpected_keys, error_msgs)

    @property
    def fitted(self) -> bool:
        return bool(self.fitted_flag.item())


class PrototypeHead(_FittedBuffers):
    """Nearest class prototype: the mean normalised embedding of each class; the score of
    a class is the cosine similarity between the image and the class prototype."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.register_buffer("prototypes", torch.zeros(num_classes, 0))
        self.register_buffer("fitted_flag", torch.zeros((), dtype=torch.bool))

    @torch.no_grad()
    def fit(self, features: torch.Tensor, labels: torch.Tensor) -> None:
        feats = F.normalize(features.float(), dim=1)
        sums = torch.zeros(self.num_classes, feats.shape[1], dtype=feats.dtype, device=feats.device)
        sums.index_add_(0, labels, feats)
        counts = torch.bincount(labels, minlength=self.num_classes)
        if (counts == 0).any():
            empty = (counts == 0).nonzero().flatten().tolist()
            raise ValueError(f"classes {empty[:5]} have no training embedding")
        self.prototypes = F.normalize(sums / counts[:, None], dim=1)
        self.fitted_flag.fill_(True)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return F.normalize(features.float(), dim=1) @ self.prototypes.T


class KNNHead(_FittedBuffers):
    """k nearest neighbours by cosine similarity, votes weighted by ``exp(sim / T)``
    (the weighted kNN of DINO/InstDisc). The score of a voted class is ``1 + its vote
    share``; classes no neighbour votes for follow, ranked by their prototype similarity
    mapped to [0, 1], so the ranked list is complete."""

    def __init__(self, num_classes: int, k: int = 20, temperature: float = 0.07) -> None:
        super().__init__()
        if k < 1:
            raise ValueError("k must be at least 1")
        self.num_classes, self.k, self.temperature = num_classes, k, temperature
        self.register_buffer("bank", torch.zeros(0, 0))
        self.register_buffer("bank_labels", torch.zeros(0, dtype=torch.long))
        self.register_buffer("fitted_flag", torch.zeros((), dtype=torch.bool))
        self.prototype = PrototypeHead(num_classes)

    @torch.no_grad()
    def fit(self, features: torch.Tensor, labels: torch.Tensor) -> None:
        self.bank = F.normalize(features.float(), dim=1)
        self.bank_labels = labels.long().clone()
        self.prototype.fit(features, labels)
        self.fitted_flag.fill_(True)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        feats = F.normalize(features.float(), dim=1)
        sims = feats @ self.bank.T
        k = min(self.k, self.bank.shape[0])
        top_sims, top_idx = sims.topk(k, dim=1)
        weights = (top_sims / self.temperature).exp()
        votes = torch.zeros(feats.shape[0], self.num_classes, dtype=feats.dtype, device=feats.device)
        votes.scatter_add_(1, self.bank_labels[top_idx], weights)
        share = votes / votes.sum(dim=1, keepdim=True)
        fallback = (self.prototype(features) + 1) / 2
        return torch.where(votes > 0, 1 + share, fallback)
