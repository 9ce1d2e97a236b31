"""From a score map to a mask: the map-to-mask steps every mask-making method shares.

A score map (a CAM, a saliency map) in [0, 1] becomes a bool mask at the photo's
resolution in two steps, each chosen by name from a registry:

- ``UPSAMPLING`` (``--upsample``): how the map is resized to the photo's H x W;
- ``THRESHOLD_RULES`` (``--threshold``, ``--threshold-value``): how the resized map is cut.

``val`` is the one rule whose level is chosen beforehand: the CAM level of ``VAL_GRID``
that maximises the mIoU on the task's validation part (``choose_val_level``, by the
scorer's functions); the refinements (GrabCut, superpixels) are ``minbench.models.refine``'s.
A new rule registers itself in ``THRESHOLD_RULES`` with
``THRESHOLD_RULES.register(name, default=..., bounds=..., bounds_text=...)``; the command
line, the recipe checks and ``cam_to_mask`` read the registry. The CAM methods live in
``minbench.models.cam``; the saliency baselines (``minbench.models.saliency_baselines``)
use ``otsu_mask`` from here.
"""

from __future__ import annotations

import numpy as np

from minbench.errors import UserError
from minbench.registry import Registry

#: --upsample: mode name -> OpenCV interpolation flag name
UPSAMPLING: Registry[str] = Registry("upsampling mode")
UPSAMPLING.add("bilinear", "INTER_LINEAR")
UPSAMPLING.add("bicubic", "INTER_CUBIC")
UPSAMPLING.add("nearest", "INTER_NEAREST")

#: --threshold: rule name -> ``rule(score, value) -> bool mask`` for a non-constant map in
#: [0, 1]; info: ``default`` (value when none is given), ``bounds``/``bounds_text`` (its range),
#: ``tuned`` (its value is chosen on the validation part, never given)
THRESHOLD_RULES: Registry = Registry("threshold rule")
THRESHOLDS = THRESHOLD_RULES  # the name the command line and the recipe checks use


def otsu_mask(score: np.ndarray) -> np.ndarray:
    """The one Otsu threshold: a map in [0, 1] quantised to 256 levels, OpenCV's Otsu level
    on that histogram, bool mask of the levels above it. A constant map gives an empty mask."""
    import cv2

    score = np.asarray(score, dtype=np.float32)
    if score.size == 0 or float(score.max() - score.min()) < 1e-6:
        return np.zeros(score.shape, dtype=bool)
    u8 = np.clip(score * 255.0 + 0.5, 0, 255).astype(np.uint8)
    level, _ = cv2.threshold(u8, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    return u8 > level


@THRESHOLD_RULES.register("otsu", default=None)
def _otsu_rule(score: np.ndarray, value: float | None) -> np.ndarray:
    """Otsu's level on the map's 256-bin histogram."""
    return otsu_mask(score)


@THRESHOLD_RULES.register("fixed", default=0.5, bounds=(0.0, 1.0),
                          bounds_text="a fixed threshold is a CAM level in [0, 1]")
def _fixed_rule(score: np.ndarray, value: float) -> np.ndarray:
    """Map >= value."""
    return score >= value


@THRESHOLD_RULES.register("percentile", default=70.0, bounds=(0.0, 100.0),
                          bounds_text="a percentile is in [0, 100]")
def _percentile_rule(score: np.ndarray, value: float) -> np.ndarray:
    """Map >= its value-th percentile (70 keeps the top 30 %)."""
    return score >= np.percentile(score, value)


@THRESHOLD_RULES.register("val", default=None, bounds=(0.0, 1.0), tuned=True,
                          bounds_text="the val threshold is a CAM level in [0, 1]")
def _val_rule(score: np.ndarray, value: float) -> np.ndarray:
    """Map >= the level chosen on the validation part (``choose_val_level``)."""
    return score >= value


#: the CAM levels ``val`` searches
VAL_GRID = tuple(round(x, 3) for x in np.linspace(0.05, 0.95, 19))


def is_tuned(rule: str) -> bool:
    """Whether ``rule``'s level is chosen on the validation part (no --threshold-value)."""
    return bool(THRESHOLD_RULES.info(rule).get("tuned"))


def choose_val_level(card, scores, truths, grid=VAL_GRID) -> tuple[float, dict[float, float]]:
    """The level of ``grid`` whose masks (score >= level) maximise the card's headline
    (mIoU) on the validation pairs (``scores``: maps in [0, 1], ``truths``: bool masks),
    computed by the scorer's functions; the first of equals (lowest level). Returns (level,
    {level: headline})."""
    from minbench.scoring import metrics as M
    from minbench.scoring.tables import segmentation_table

    if not len(scores):
        raise UserError(f"--threshold val: task {card.id} has no validation photos to choose a level on")
    sign = 1.0 if card.headline_metric.higher_is_better else -1.0
    curve = {float(level): M.evaluate(card, segmentation_table(
        (s >= level, t) for s, t in zip(scores, truths)))[card.headline] for level in grid}
    return max(curve, key=lambda level: (sign * curve[level], -level)), curve


#: rule -> its value when none is given
DEFAULT_THRESHOLD_VALUE = {name: THRESHOLD_RULES.info(name)["default"] for name in THRESHOLD_RULES}


def check_upsample(mode: str) -> str:
    """The OpenCV interpolation flag name of ``--upsample mode``; a ``UserError`` otherwise."""
    return UPSAMPLING.get(mode, what=f"--upsample {mode!r}")


def check_threshold(rule: str, value: float | None) -> float | None:
    """Validate a threshold rule and its value; returns the value to use (None: ``otsu``,
    or ``val`` before its level is chosen)."""
    THRESHOLD_RULES.get(rule, what=f"--threshold {rule!r}")
    info = THRESHOLD_RULES.info(rule)
    if value is None:
        return info["default"]
    value = float(value)
    bounds = info.get("bounds")
    if bounds is not None and not bounds[0] <= value <= bounds[1]:
        raise UserError(f"--threshold-value {value}: {info['bounds_text']}")
    return value


def upsample_cam(cam: np.ndarray, size: tuple[int, int], mode: str = "bilinear") -> np.ndarray:
    """A map (h x w) resized to ``size`` = (H, W) of the original image, clipped to [0, 1]."""
    import cv2

    flag = getattr(cv2, check_upsample(mode))
    h, w = int(size[0]), int(size[1])
    out = cv2.resize(np.ascontiguousarray(cam, dtype=np.float32), (w, h), interpolation=flag)
    return np.clip(out, 0.0, 1.0)


def threshold_cam(cam: np.ndarray, rule: str = "otsu", value: float | None = None) -> np.ndarray:
    """A map in [0, 1] to a bool mask by the threshold rule ``rule`` (``THRESHOLD_RULES``).

    ``otsu``: Otsu's level on the map's 256-bin histogram; ``fixed``, ``val``: map >= value;
    ``percentile``: map >= its value-th percentile. A constant map (no evidence anywhere)
    gives an empty mask under every rule.
    """
    value = check_threshold(rule, value)
    cam = np.asarray(cam, dtype=np.float32)
    if cam.size == 0 or float(cam.max() - cam.min()) < 1e-6:
        return np.zeros(cam.shape, dtype=bool)
    if value is None and is_tuned(rule):
        raise RuntimeError(f"threshold rule {rule!r}: its level is chosen on the validation part first")
    return THRESHOLD_RULES.get(rule)(cam, value)


def cam_to_mask(cam: np.ndarray, size: tuple[int, int], *, threshold: str = "otsu",
                threshold_value: float | None = None, upsample: str = "bilinear") -> np.ndarray:
    """Upsample a map to the image's (H, W) and threshold it there: a bool mask."""
    return threshold_cam(upsample_cam(cam, size, upsample), threshold, threshold_value)
