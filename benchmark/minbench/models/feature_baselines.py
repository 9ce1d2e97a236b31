"""Heads on frozen backbone features: nearest class prototype, k nearest neighbours
(MineralNet's next step after fine-tuning: no gradient at all) and a linear probe.

The prototype and kNN heads work on L2-normalised embeddings and score by cosine
similarity; the logistic head is a multinomial logistic regression on standardised
features (the small linear model an outsider fits to probe what a feature tells). Each is
fitted from the whole training set's embeddings at once (``fit``), and keeps what it learnt
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


class LogisticHead(_FittedBuffers):
    """Multinomial logistic regression on standardised features, L2-regularised, fitted
    full-batch with L-BFGS: deterministic (float64 on the CPU, from zero weights; the loss
    is strictly convex, so there is one optimum whatever the start).

    The loss is the summed cross-entropy plus ``l2 / 2`` times the squared weights (biases
    free): scikit-learn's ``C = 1 / l2``, so the default ``l2 = 1`` is its default. Features
    are standardised by the training set's mean and standard deviation first, so that one
    penalty fits every feature whatever its scale. Scores are class probabilities.
    """

    def __init__(self, num_classes: int, l2: float = 1.0, max_iter: int = 500) -> None:
        super().__init__()
        if l2 <= 0:
            raise ValueError("l2 must be positive (an unpenalised probe of separable data has no optimum)")
        self.num_classes, self.l2, self.max_iter = num_classes, float(l2), int(max_iter)
        for name in ("shift", "scale", "weight", "bias"):
            self.register_buffer(name, torch.zeros(0))
        self.register_buffer("fitted_flag", torch.zeros((), dtype=torch.bool))

    def fit(self, features: torch.Tensor, labels: torch.Tensor) -> None:
        # gradients for the fit even where a caller holds them off (Lightning's validation
        # hooks run in inference mode); on fresh copies, never on the caller's tensors
        with torch.inference_mode(False), torch.enable_grad():
            x = features.detach().to("cpu", torch.float64).clone()
            y = labels.detach().to("cpu", torch.long).clone()
            shift, scale = x.mean(0), x.std(0, unbiased=False)
            scale = torch.where(scale > 1e-8, scale, torch.ones_like(scale))  # a constant feature stays 0
            weight, bias = self._minimise((x - shift) / scale, y)
        device = self.fitted_flag.device
        self.shift, self.scale = shift.float().to(device), scale.float().to(device)
        self.weight, self.bias = weight.float().to(device), bias.float().to(device)
        self.fitted_flag.fill_(True)

    def _minimise(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        weight = torch.zeros(self.num_classes, x.shape[1], dtype=torch.float64, requires_grad=True)
        bias = torch.zeros(self.num_classes, dtype=torch.float64, requires_grad=True)
        opt = torch.optim.LBFGS([weight, bias], lr=1.0, max_iter=self.max_iter, history_size=20,
                                tolerance_grad=1e-9, tolerance_change=1e-12, line_search_fn="strong_wolfe")

        def closure():
            opt.zero_grad()
            loss = F.cross_entropy(x @ weight.T + bias, y, reduction="sum") + 0.5 * self.l2 * weight.pow(2).sum()
            loss.backward()
            return loss

        opt.step(closure)
        return weight.detach(), bias.detach()

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        x = (features.float() - self.shift) / self.scale
        return (x @ self.weight.T + self.bias).softmax(dim=1)
