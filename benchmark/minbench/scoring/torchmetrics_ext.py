"""The one torchmetrics class minbench adds (imported only where torch is wanted)."""

from __future__ import annotations

import torch
from torchmetrics.classification import MulticlassRecall


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
