"""Reference baselines for the segmentation task: masks made without any classifier.

A CAM's mean IoU means something only beside what trivial cues already give, so every
segmentation run scores these too:

- ``centre``: a centred ellipse (museum photos put the specimen in the middle).
- ``colour``: colour saliency after frequency-tuned saliency (Achanta et al., CVPR 2009):
  distance of each blurred pixel's chroma (Lab a*, b*) from the image's mean chroma,
  Otsu-thresholded. Lightness is left out: studio backdrops are grey gradients whose
  bright and dark ends would otherwise outshine the specimen.
- ``border``: background subtraction (``backdrop``, below), largest component kept.
- ``blob``: the largest non-backdrop blob: the same mask's largest component, holes filled
  (a specimen is one solid object; its highlights and backdrop-coloured spots are not holes).

Each takes an RGB uint8 image (H x W x 3) and returns ``(score, mask)``: a float32 map
in [0, 1] and a bool mask, both H x W. Work happens at a long side of ``work_size``
pixels and the result is resized back, so full-size photos cost milliseconds.

The backdrop model is the one every single-cue reference shares (``non_backdrop_mask``: the
colour statistics of the few-shot reference, the photo colour of the zero-shot colour-word
lookup, the ``blob`` baseline, the size reference's pixel extent): a smooth background (a
plane in Lab over x, y, so gradient backdrops fit too) is fitted to the image border;
pixels far from it are foreground (Otsu), cleaned by a morphological opening.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from minbench.errors import UserError
from minbench.models.masking import otsu_mask
from minbench.registry import Registry

WORK_SIZE = 256

#: name -> ``baseline(image) -> (score, mask)``; info ``description``: the board's line for it
SALIENCY_BASELINES: Registry[Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]] = Registry("saliency baseline")


def _check_image(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] not in (3, 4) or min(image.shape[:2]) < 1:
        raise UserError(f"saliency baseline: expected an H x W x 3 image, got shape {image.shape}")
    return np.ascontiguousarray(image[..., :3].astype(np.uint8, copy=False))


def _shrink(image: np.ndarray, work_size: int) -> np.ndarray:
    import cv2

    h, w = image.shape[:2]
    scale = work_size / max(h, w)
    if scale >= 1.0:
        return image
    return cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)


def _grow(score: np.ndarray, mask: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    import cv2

    h, w = size
    if score.shape == (h, w):
        return score.astype(np.float32), mask.astype(bool)
    score = cv2.resize(score.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
    mask = cv2.resize(mask.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST).astype(bool)
    return score, mask


def _unit(x: np.ndarray) -> np.ndarray:
    lo, hi = float(x.min()), float(x.max())
    return ((x - lo) / (hi - lo)).astype(np.float32) if hi - lo > 1e-9 else np.zeros_like(x, dtype=np.float32)


def _lab(image: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.cvtColor(image, cv2.COLOR_RGB2LAB).astype(np.float32)


@SALIENCY_BASELINES.register("centre", description="centre prior (centred ellipse)")
def centre_prior(image: np.ndarray, scale: float = 0.6) -> tuple[np.ndarray, np.ndarray]:
    """A centred ellipse whose axes are ``scale`` times the image's width and height."""
    image = _check_image(image)
    h, w = image.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    r2 = ((xx + 0.5 - w / 2) / (scale * w / 2)) ** 2 + ((yy + 0.5 - h / 2) / (scale * h / 2)) ** 2
    score = np.clip(1.0 - np.sqrt(r2) / 2.0, 0.0, 1.0).astype(np.float32)
    return score, r2 <= 1.0


@SALIENCY_BASELINES.register("colour", description="colour saliency (frequency-tuned, Otsu)")
def colour_saliency(image: np.ndarray, work_size: int = WORK_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """Chroma saliency: |blurred (a*, b*) - mean (a*, b*)|, Otsu threshold."""
    import cv2

    image = _check_image(image)
    small = _shrink(image, work_size)
    ab = cv2.GaussianBlur(_lab(small), (5, 5), 0)[..., 1:]
    score = _unit(np.linalg.norm(ab - ab.reshape(-1, 2).mean(0), axis=2))
    return _grow(score, otsu_mask(score), image.shape[:2])


def _border_pixels(h: int, w: int, frac: float) -> np.ndarray:
    b = max(1, int(round(frac * min(h, w))))
    ring = np.zeros((h, w), dtype=bool)
    ring[:b], ring[-b:], ring[:, :b], ring[:, -b:] = True, True, True, True
    return ring


def backdrop(image: np.ndarray, border: float = 0.04,
             work_size: int = WORK_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """The backdrop model at the working size: ``(score, mask)`` of the shrunk photo, the
    score its normalised distance from a Lab plane fitted to the border ring, the mask the
    pixels off the backdrop (Otsu), cleaned by a morphological opening."""
    import cv2

    small = _shrink(_check_image(image), work_size)
    h, w = small.shape[:2]
    lab = cv2.GaussianBlur(_lab(small), (5, 5), 0)
    ring = _border_pixels(h, w, border)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    design = np.stack([np.ones_like(xx), xx / w, yy / h], axis=-1)  # plane: a + b x + c y per channel
    coef, *_ = np.linalg.lstsq(design[ring], lab[ring], rcond=None)
    residual = lab - design @ coef
    # A robust spread of the border residual makes the distance comparable across photos.
    spread = np.median(np.abs(residual[ring]), axis=0) + 1.0
    score = _unit(np.linalg.norm(residual / spread, axis=2))
    mask = otsu_mask(score)
    if mask.any():
        k = max(3, (min(h, w) // 64) | 1)
        mask = cv2.morphologyEx(mask.astype(np.uint8), cv2.MORPH_OPEN, np.ones((k, k), np.uint8)).astype(bool)
    return score, mask


def non_backdrop_mask(image: np.ndarray, border: float = 0.04, work_size: int = WORK_SIZE) -> np.ndarray:
    """The pixels of an RGB photo that are not backdrop (bool, H x W): ``backdrop``'s mask
    at the photo's size. Empty when the photo is one colour."""
    image = _check_image(image)
    score, mask = backdrop(image, border, work_size)
    return _grow(score, mask, image.shape[:2])[1]


def largest_blob(mask: np.ndarray, fill_holes: bool = True) -> np.ndarray:
    """The largest 8-connected component of a bool mask (ties: the first in scan order),
    with its holes filled when ``fill_holes``; an empty mask stays empty."""
    import cv2

    mask = np.asarray(mask, bool)
    if not mask.any():
        return mask.copy()
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    blob = labels == 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA])) if n > 2 else mask.copy()
    if fill_holes:
        # a hole is background the frame cannot reach: flood the outside from a padded corner
        padded = np.pad(blob, 1).astype(np.uint8)
        cv2.floodFill(padded, None, (0, 0), 1)
        blob = blob | (padded[1:-1, 1:-1] == 0)
    return blob


@SALIENCY_BASELINES.register("border", description="background subtraction (border colour model, Otsu)")
def border_background(image: np.ndarray, border: float = 0.04, work_size: int = WORK_SIZE,
                      largest_component: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Background subtraction from a smooth background model fitted to the border."""
    image = _check_image(image)
    score, mask = backdrop(image, border, work_size)
    if largest_component:
        mask = largest_blob(mask, fill_holes=False)
    return _grow(score, mask, image.shape[:2])


@SALIENCY_BASELINES.register("blob", description="largest non-backdrop blob, holes filled")
def largest_non_backdrop_blob(image: np.ndarray, border: float = 0.04,
                              work_size: int = WORK_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """The largest blob of the backdrop model's mask, holes filled."""
    image = _check_image(image)
    score, mask = backdrop(image, border, work_size)
    return _grow(score, largest_blob(mask), image.shape[:2])


def baseline_names() -> list[str]:
    """The saliency baselines every segmentation run scores beside its CAM."""
    return SALIENCY_BASELINES.names()


def run_baseline(name: str, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(score, mask)`` of baseline ``name`` on one RGB image."""
    return SALIENCY_BASELINES.get(name, what=f"baseline {name!r}")(image)
