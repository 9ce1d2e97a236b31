"""The card's metrics as torchmetrics objects, for the trainers' logs during training.

Trainers log these on the validation carve (the checkpoint monitor) and wherever
Lightning runs them; reported numbers come from the scorer (``scoring/score.py``),
which never imports this module, so ``minbench score`` stays free of torch.
"""

from __future__ import annotations

import torch
import torchmetrics
from torchmetrics.classification import MulticlassAccuracy, MulticlassRecall

from minbench.cards import TaskCard
from minbench.scoring.metrics import CARD_FAMILY


class PresentClassRecall(MulticlassRecall):
    """Macro recall over the classes present in the target.

    torchmetrics' ``average='macro'`` also averages in classes that were predicted but
    never true (recall 0); the scorer's ``macro_recall`` (scikit-learn's balanced
    accuracy) does not, and training logs must report the number the scorer will.
    States are torchmetrics' per-class counts, so DDP sync works unchanged.
    """

    def __init__(self, num_classes: int, **kwargs) -> None:
        kwargs["average"] = "none"
        super().__init__(num_classes=num_classes, **kwargs)

    def compute(self) -> torch.Tensor:
        tp, fp, tn, fn = self._final_state()
        support = tp + fn
        present = support > 0
        if not bool(present.any()):
            return torch.tensor(float("nan"))
        return (tp[present].double() / support[present].double()).mean().float()


def build_torchmetrics(card: TaskCard, num_classes: int) -> torchmetrics.MetricCollection:
    """A ``MetricCollection`` of the card's metrics for logging during training.

    Classification cards only: ``topk_accuracy`` -> ``MulticlassAccuracy(top_k=k,
    average='micro')`` (k capped at ``num_classes``, where it is 1 anyway) and
    ``macro_recall`` -> macro recall over the classes present in the target (as the
    scorer computes it). Keys are the card's metric names. Inputs: logits N x C, target N.
    """
    if CARD_FAMILY.get(card.kind) != "classification":
        raise ValueError(f"build_torchmetrics supports classification cards; {card.id} is a {card.kind} task")
    metrics = {}
    for spec in card.metrics:
        if spec.kind == "topk_accuracy":
            metrics[spec.name] = MulticlassAccuracy(num_classes=num_classes, top_k=min(spec.k, num_classes),
                                                    average="micro")
        elif spec.kind == "macro_recall":
            metrics[spec.name] = PresentClassRecall(num_classes=num_classes)
        else:
            raise ValueError(f"{card.path}: metric kind {spec.kind!r} has no training-time torchmetrics form")
    # compute_groups=False: torchmetrics merges metrics whose states agree after the first
    # update, and top-1/top-k agree whenever that batch has no near misses; top-k would then
    # log top-1 for the rest of the run.
    return torchmetrics.MetricCollection(metrics, compute_groups=False)
