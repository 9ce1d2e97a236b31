"""``ColourWordZeroShot``: the zero-shot task's colour-only reference row.

No encoder and no training: each candidate's colours come from the colour words of its
public class text, and photos are ranked against them by their dominant colour
(``minbench.models.colour_words``), on ``ZeroShotTask``'s candidates and sealed test rows.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from minbench.trainers.zeroshot import ZeroShotTask


class ColourWordZeroShot(ZeroShotTask):
    """The colour-word lookup (``minbench.models.colour_words``): each candidate's colours
    from the colour words of its public class text (its names and the dataset's class
    description), ranked by the CIE76 distance of the nearest one to the photo's median
    L*a*b* off the backdrop; ties by name. Nothing is trained or embedded; no training
    class is read, so there is no generalised zero-shot figure (``seen_classes`` is empty).

    Args:
        classnames_file: candidate classes and their names (``zeroshot_head.load_class_names``).
        top_k: ranks written per image.
    """

    trainable = False

    def __init__(self, task: str = "zeroshot", *, classnames_file: str | None = None, top_k: int = 10) -> None:
        super().__init__(task, classnames_file=classnames_file, top_k=top_k)

    def configure_models(self) -> None:
        self.model = nn.Identity()  # a LightningModule wants a module; the lookup holds no weights
        self.class_colours: list[np.ndarray] = []

    def read_class_texts(self, context) -> None:
        """The candidates (the bank's rule) and the L*a*b* colours their class texts name."""
        from minbench.models.colour_words import srgb255_to_lab, text_colours

        self.bank.resolve(context)
        texts = dict(context.class_texts or {})
        cand = self.unseen
        self.class_colours = [srgb255_to_lab(text_colours("; ".join([*names, texts.get(c, "")])))
                              for c, names in zip(cand.classes, cand.prompt_names)]

    @property
    def seen_classes(self) -> list[str]:
        return []

    def on_predict_start(self) -> None:
        if self.bank.unseen is None:
            raise RuntimeError("ColourWordZeroShot has no candidates: run it with a Trainer and the data module, "
                               "or call configure_data(dm.task_context()) first")

    def predict_step(self, batch: dict[str, Any], batch_idx: int, dataloader_idx: int = 0) -> dict[str, Any]:
        """The top-k candidates per image, best first, and their scores (minus the distance)."""
        from minbench.models.colour_features import to_srgb
        from minbench.models.colour_words import photo_colours, rank_by_colour

        colours = photo_colours(to_srgb(batch["image"], self.in_mean, self.in_std))
        distance, order = rank_by_colour(colours, self.class_colours, self.unseen.classes)
        top = order[:, : min(int(self.hparams.top_k), order.shape[1])]
        return {"index": batch["index"].cpu(), "indices": torch.from_numpy(np.ascontiguousarray(top)),
                "values": torch.from_numpy(-np.take_along_axis(distance, top, axis=1)).float()}
