"""Refinements of a score map by the photo (``--refine``): ``REFINEMENTS``.

A refinement takes the photo (uint8 H x W x 3) and a map in [0, 1] of the same size and
returns a refined map in [0, 1]: still a score map (PxAP scores it), cut into a mask by the
threshold rule (``minbench.models.masking``) like the CAM itself. ``SegmentationTask`` runs
it on the classifier's input (the photo resized whole to S x S, at most ``WORK_SIDE``: a
downscaled copy, for speed) and upsamples the refined map to the photo's resolution.
Their few scalars are fixed here; the threshold that cuts the refined map is what a recipe
chooses on the validation part (``--threshold val``).
"""

from __future__ import annotations

import numpy as np

from minbench.models.masking import otsu_mask
from minbench.registry import Registry

#: --refine: name -> ``refine(photo, score) -> score``; info: ``description``
REFINEMENTS: Registry = Registry("refinement")
#: the longest side a refinement works at (a larger input is downscaled first)
WORK_SIDE = 256
#: GrabCut's seeds: CAM levels of sure foreground / sure background (between them: Otsu's
#: mask is probable foreground, the rest probable background), and its iterations
GRABCUT_SURE_FG, GRABCUT_SURE_BG, GRABCUT_ITERATIONS = 0.8, 0.1, 3
#: SLIC: about this many superpixels per photo, and its compactness (colour vs space)
SLIC_SEGMENTS, SLIC_COMPACTNESS = 150, 10.0


@REFINEMENTS.register("none", description="the CAM as it is")
def _none(photo: np.ndarray, score: np.ndarray) -> np.ndarray:
    return score


@REFINEMENTS.register("grabcut", description="GrabCut seeded by the CAM; its foreground raised in the map")
def grabcut(photo: np.ndarray, score: np.ndarray) -> np.ndarray:
    """The map averaged with GrabCut's foreground (0/1): GrabCut (OpenCV) seeded with the
    CAM's sure / probable foreground and background. Pixels GrabCut keeps rise by half, so
    the map still ranks within each side; unchanged when a seed class is missing."""
    import cv2

    seeds = np.where(otsu_mask(score), cv2.GC_PR_FGD, cv2.GC_PR_BGD).astype(np.uint8)
    seeds[score >= GRABCUT_SURE_FG] = cv2.GC_FGD
    seeds[score <= GRABCUT_SURE_BG] = cv2.GC_BGD
    fg = np.isin(seeds, (cv2.GC_FGD, cv2.GC_PR_FGD))
    if fg.all() or not fg.any():  # GrabCut needs both sides to fit its colour models
        return score
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    cv2.setRNGSeed(0)  # its k-means start draws from OpenCV's global RNG: one photo, one answer
    cv2.grabCut(np.ascontiguousarray(photo[..., ::-1]), seeds, None, bgd, fgd, GRABCUT_ITERATIONS,
                cv2.GC_INIT_WITH_MASK)
    kept = np.isin(seeds, (cv2.GC_FGD, cv2.GC_PR_FGD))
    return (0.5 * score + 0.5 * kept).astype(np.float32)


@REFINEMENTS.register("superpixels", description="the CAM averaged over SLIC superpixels")
def superpixels(photo: np.ndarray, score: np.ndarray) -> np.ndarray:
    """The map's mean over each SLIC superpixel (scikit-image): edges follow the photo's."""
    from skimage.segmentation import slic

    labels = slic(photo, n_segments=SLIC_SEGMENTS, compactness=SLIC_COMPACTNESS, start_label=0)
    sums = np.bincount(labels.ravel(), weights=score.ravel().astype(np.float64))
    counts = np.maximum(np.bincount(labels.ravel()), 1)
    return (sums / counts)[labels].astype(np.float32)


def check_refine(name: str) -> str:
    """``name`` when it is a refinement; a one-line ``UserError`` otherwise."""
    REFINEMENTS.get(name, what=f"--refine {name!r}")
    return name


def refine(name: str, photo: np.ndarray, score: np.ndarray) -> np.ndarray:
    """The refinement ``name`` of ``score`` by ``photo`` (same H x W), worked at no more
    than ``WORK_SIDE`` on the longer side and returned at the map's size, in [0, 1]."""
    import cv2

    fn = REFINEMENTS.get(check_refine(name))
    if fn is _none:
        return score
    h, w = score.shape
    factor = min(1.0, WORK_SIDE / max(h, w))
    if factor < 1.0:
        size = (max(1, round(w * factor)), max(1, round(h * factor)))
        photo = cv2.resize(photo, size, interpolation=cv2.INTER_AREA)
        small = cv2.resize(score.astype(np.float32), size, interpolation=cv2.INTER_AREA)
        out = cv2.resize(fn(photo, small), (w, h), interpolation=cv2.INTER_LINEAR)
    else:
        out = fn(photo, score.astype(np.float32))
    return np.clip(out, 0.0, 1.0).astype(np.float32)
