"""The colour-word lookup: what colour alone names among zero-shot candidates, with no training.

Each candidate class is read from its public class text only (its name and the dataset's
class description, ``TaskContext.class_texts``): every phrase of it (between commas,
semicolons, colons, "to" and "or") that ``minbench.data.synth.colors.parse_colour`` reads as
a colour (its table of gemmologists' colour words, ``BASE`` and the "-ish" tints ``ISH``,
with modifiers such as "pale" and "dark") gives the class one sRGB colour (two for a banded
one). A photo's colour is the median CIE L*a*b* of its non-backdrop pixels (the shared
backdrop model, ``colour_features.non_backdrop_pixels``): the median, so that a highlight,
the label or the cube moves it little. Candidates rank by the smallest CIE76 distance
(Euclidean in L*a*b*) between the photo's colour and any of theirs, ties by name; a class
whose text names no colour ranks after every class that names one.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import torch

from minbench.models.colour_features import masked_quantiles, non_backdrop_pixels, srgb_to_lab

#: where a class text's colour phrases part ("yellow to brown", "red, blue; vitreous lustre")
PHRASE_BREAKS = re.compile(r"[,;:]|\bto\b|\bor\b")


def text_colours(text: str) -> list[tuple[int, int, int]]:
    """The sRGB colours (0-255) the colour phrases of ``text`` name, in order, each once."""
    from minbench.data.synth.colors import parse_colour

    found: list[tuple[int, int, int]] = []
    for phrase in PHRASE_BREAKS.split(text):
        colour = parse_colour(phrase) if phrase.strip() else None
        if colour is None:
            continue
        for rgb in (colour.rgb, colour.rgb2):
            if rgb is not None and tuple(rgb) not in found:
                found.append(tuple(int(v) for v in rgb))
    return found


def srgb255_to_lab(colours: Sequence[tuple[int, int, int]]) -> np.ndarray:
    """sRGB colours (0-255) -> CIE L*a*b* (N x 3), by the same conversion as the photos'."""
    if not len(colours):
        return np.zeros((0, 3))
    rgb = torch.as_tensor(np.asarray(colours, np.float32) / 255.0).T[None, :, :, None]  # 1 x 3 x N x 1
    return srgb_to_lab(rgb)[0, :, :, 0].T.double().numpy()


def photo_colours(rgb: torch.Tensor) -> np.ndarray:
    """The median L*a*b* of each photo's non-backdrop pixels (sRGB in [0, 1], B x 3 x H x W) -> B x 3."""
    lab = srgb_to_lab(rgb).flatten(2)
    median = masked_quantiles(lab, non_backdrop_pixels(rgb).flatten(1), torch.tensor([0.5]))
    return median[:, 0].double().cpu().numpy()


def rank_by_colour(photos: np.ndarray, classes: Sequence[np.ndarray],
                   names: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """For photo colours (B x 3, L*a*b*) and each class's colours (K arrays of n_k x 3):
    ``(distance, order)``, both B x K: the smallest CIE76 distance to each class (``inf`` for
    a class without colours) and the classes best first (ties broken by ``names``)."""
    photos = np.asarray(photos, np.float64).reshape(-1, 3)
    distance = np.full((len(photos), len(classes)), np.inf)
    for k, colours in enumerate(classes):
        if len(colours):
            distance[:, k] = np.linalg.norm(photos[:, None] - np.asarray(colours)[None], axis=2).min(1)
    by_name = np.argsort(np.argsort(np.asarray(names, dtype=object), kind="stable"), kind="stable")
    order = np.stack([np.lexsort((by_name, row)) for row in distance]) if len(photos) else \
        np.zeros((0, len(classes)), np.int64)
    return distance, order
