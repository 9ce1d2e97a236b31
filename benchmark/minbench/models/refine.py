"""Refinements of a score map by the photo (``--refine``): ``REFINEMENTS``.

A refinement takes the photo (uint8 H x W x 3) and a map in [0, 1] of the same size and
returns a refined map in [0, 1]: still a score map (PxAP scores it), cut into a mask by the
threshold rule (``minbench.models.masking``) like the CAM itself. ``SegmentationTask`` runs
it on the classifier's input (the photo resized whole to S x S, at most ``WORK_SIDE``: a
downscaled copy, for speed) and upsamples the refined map to the photo's resolution.
Each refinement's few settings (its keyword arguments, listed with their ranges in the
registry's ``settings``) have defaults here and are a recipe's ``refine_args``: a recipe
chooses them, and the threshold that cuts the refined map (``--threshold val``), on the
validation part.
"""

from __future__ import annotations

import numpy as np

from minbench.errors import UserError
from minbench.models.masking import otsu_mask
from minbench.registry import Registry

#: --refine: name -> ``refine(photo, score, **settings) -> score``; info: ``description`` and
#: ``settings`` (name -> (type, low, high): the closed range a value must lie in)
REFINEMENTS: Registry = Registry("refinement")
#: the longest side a refinement works at (a larger input is downscaled first)
WORK_SIDE = 256


@REFINEMENTS.register("none", description="the CAM as it is", settings={})
def _none(photo: np.ndarray, score: np.ndarray) -> np.ndarray:
    return score


@REFINEMENTS.register("grabcut", description="GrabCut seeded by the CAM; its foreground raised in the map",
                      settings={"sure_fg": (float, 0.0, 1.0), "sure_bg": (float, 0.0, 1.0),
                                "iterations": (int, 1, 20)})
def grabcut(photo: np.ndarray, score: np.ndarray, *, sure_fg: float = 0.8, sure_bg: float = 0.1,
            iterations: int = 3) -> np.ndarray:
    """The map averaged with GrabCut's foreground (0/1): GrabCut (OpenCV) seeded with the
    CAM's sure foreground (``score >= sure_fg``), sure background (``<= sure_bg``) and, in
    between, probable foreground (Otsu's mask) or background, ``iterations`` rounds. Pixels
    GrabCut keeps rise by half, so the map still ranks within each side; unchanged when a
    seed class is missing."""
    import cv2

    seeds = np.where(otsu_mask(score), cv2.GC_PR_FGD, cv2.GC_PR_BGD).astype(np.uint8)
    seeds[score >= sure_fg] = cv2.GC_FGD
    seeds[score <= sure_bg] = cv2.GC_BGD
    fg = np.isin(seeds, (cv2.GC_FGD, cv2.GC_PR_FGD))
    if fg.all() or not fg.any():  # GrabCut needs both sides to fit its colour models
        return score
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    cv2.setRNGSeed(0)  # its k-means start draws from OpenCV's global RNG: one photo, one answer
    cv2.grabCut(np.ascontiguousarray(photo[..., ::-1]), seeds, None, bgd, fgd, int(iterations),
                cv2.GC_INIT_WITH_MASK)
    kept = np.isin(seeds, (cv2.GC_FGD, cv2.GC_PR_FGD))
    return (0.5 * score + 0.5 * kept).astype(np.float32)


@REFINEMENTS.register("superpixels", description="the CAM averaged over SLIC superpixels",
                      settings={"segments": (int, 2, 10_000), "compactness": (float, 0.01, 1000.0)})
def superpixels(photo: np.ndarray, score: np.ndarray, *, segments: int = 150,
                compactness: float = 10.0) -> np.ndarray:
    """The map's mean over each SLIC superpixel (scikit-image; about ``segments`` of them,
    ``compactness`` weighing space against colour): edges follow the photo's."""
    from skimage.segmentation import slic

    labels = slic(photo, n_segments=int(segments), compactness=float(compactness), start_label=0)
    sums = np.bincount(labels.ravel(), weights=score.ravel().astype(np.float64))
    counts = np.maximum(np.bincount(labels.ravel()), 1)
    return (sums / counts)[labels].astype(np.float32)


def check_refine(name: str, settings: dict | None = None) -> dict:
    """The settings ``refine(name, ...)`` will use: ``settings`` checked against the
    refinement's (name, type, range) and completed by its defaults; a one-line ``UserError``
    for an unknown refinement, an unknown setting or a value out of range."""
    import inspect

    fn = REFINEMENTS.get(name, what=f"--refine {name!r}")
    known = REFINEMENTS.info(name)["settings"]
    key = "model.init_args.refine_args"
    if not isinstance(settings, (dict, type(None))):
        raise UserError(f"{key}: a mapping of setting -> value, not {settings!r}")
    given = dict(settings or {})
    for setting, value in given.items():
        if setting not in known:
            names = ", ".join(known) or "none"
            raise UserError(f"{key}: {name} has no setting {setting!r} (its settings: {names})")
        kind, low, high = known[setting]
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not number or (kind is int and float(value) != int(value)) or not low <= value <= high:
            raise UserError(f"{key}.{setting}: {value!r} is not {'an integer' if kind is int else 'a number'} "
                            f"in [{low:g}, {high:g}]")
    defaults = {k: p.default for k, p in inspect.signature(fn).parameters.items() if p.kind is p.KEYWORD_ONLY}
    resolved = {**defaults, **{k: known[k][0](v) for k, v in given.items()}}
    if name == "grabcut" and not resolved["sure_bg"] < resolved["sure_fg"]:
        raise UserError(f"{key}: grabcut's sure_bg ({resolved['sure_bg']:g}) must be below its sure_fg "
                        f"({resolved['sure_fg']:g})")
    return resolved


def refine(name: str, photo: np.ndarray, score: np.ndarray, settings: dict | None = None) -> np.ndarray:
    """The refinement ``name`` of ``score`` by ``photo`` (same H x W) with ``settings``
    (checked once by the caller, ``check_refine``; those left out keep the refinement's
    defaults), worked at no more than ``WORK_SIDE`` on the longer side and returned at the
    map's size, in [0, 1]."""
    import cv2

    fn = REFINEMENTS.get(name, what=f"--refine {name!r}")
    if fn is _none:
        return score
    options = dict(settings or {})
    h, w = score.shape
    factor = min(1.0, WORK_SIDE / max(h, w))
    if factor < 1.0:
        size = (max(1, round(w * factor)), max(1, round(h * factor)))
        photo = cv2.resize(photo, size, interpolation=cv2.INTER_AREA)
        small = cv2.resize(score.astype(np.float32), size, interpolation=cv2.INTER_AREA)
        out = cv2.resize(fn(photo, small, **options), (w, h), interpolation=cv2.INTER_LINEAR)
    else:
        out = fn(photo, score.astype(np.float32), **options)
    return np.clip(out, 0.0, 1.0).astype(np.float32)
