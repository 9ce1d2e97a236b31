"""The specimen's pixel extent without the cube: the size reference of one cue, framing.

Without the reference cube, a photo still shows how much of the frame the specimen fills;
that tells its size only as far as photographers frame small and large specimens
differently, and the reference row shows how far. The extent of a photo is the longest
side of the bounding box of its largest non-backdrop blob (the shared backdrop model,
``saliency_baselines.largest_blob(non_backdrop_mask(...))``: the cube and the label are
smaller blobs) divided by the photo's long side; it is mapped to centimetres by a power law
``size = exp(intercept) * extent ** slope`` fitted by least squares of log(size) on
log(extent) over calibration photos whose sizes are known (``fit_power_law``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from minbench.models.size.settings import SizeEstimate


def blob_extent(image: np.ndarray) -> tuple[float, list[float] | None]:
    """``(extent, box)`` of an RGB photo: the longest side of its largest non-backdrop blob's
    box over the photo's long side, and that box ``[x0, y0, x1, y1]`` in pixels; ``(nan,
    None)`` when the backdrop model finds nothing."""
    from minbench.models.saliency_baselines import largest_blob, non_backdrop_mask

    blob = largest_blob(non_backdrop_mask(image))
    if not blob.any():
        return math.nan, None
    ys, xs = np.nonzero(blob)
    box = [float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)]
    return max(box[2] - box[0], box[3] - box[1]) / max(blob.shape), box


def file_extent(path) -> float:
    """``blob_extent`` of a photo file (NaN when it cannot be decoded or shows no blob)."""
    from minbench.data.decode import BadImage, load_rgb

    try:
        return blob_extent(load_rgb(path)[0])[0]
    except BadImage:
        return math.nan


def estimate_size(image: np.ndarray, law: "PowerLaw") -> SizeEstimate:
    """One photo's answer: ``law`` of its extent, with the blob's box; an abstention with
    its reason when the backdrop model finds no blob."""
    image = np.asarray(image)
    extent, box = blob_extent(image)
    size = law(extent)
    return SizeEstimate(size_cm=size, reason="" if math.isfinite(size) else "no blob off the backdrop",
                        extent_px=extent * max(image.shape[:2]), specimen_bbox=box,
                        specimen_source="largest non-backdrop blob")


@dataclass(frozen=True)
class PowerLaw:
    """``size = exp(intercept) * extent ** slope``, fitted on ``n`` photos (``rmse_log``: the
    fit's root-mean-square residual in log(size))."""

    slope: float
    intercept: float
    n: int
    rmse_log: float

    def __call__(self, extent: float) -> float:
        """The size (cm) of an extent; NaN for an extent that is not positive."""
        if not (np.isfinite(extent) and extent > 0):
            return math.nan
        return float(math.exp(self.intercept + self.slope * math.log(extent)))


def fit_power_law(extents, sizes) -> PowerLaw:
    """Least squares of log(size) on log(extent) over the pairs where both are positive and
    finite; ``ValueError`` with fewer than two such pairs or a single extent."""
    x, y = np.asarray(extents, np.float64), np.asarray(sizes, np.float64)
    ok = np.isfinite(x) & np.isfinite(y) & (x > 0) & (y > 0)
    lx, ly = np.log(x[ok]), np.log(y[ok])
    if len(lx) < 2 or np.ptp(lx) == 0:
        raise ValueError(f"{int(ok.sum())} usable calibration photo(s): a power law needs two of different extent")
    slope, intercept = np.polyfit(lx, ly, 1)
    rmse = float(np.sqrt(np.mean((ly - (intercept + slope * lx)) ** 2)))
    return PowerLaw(float(slope), float(intercept), int(len(lx)), rmse)
