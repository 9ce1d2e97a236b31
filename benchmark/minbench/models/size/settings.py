"""Settings of the size estimator and the answer it gives for one photo."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np

from minbench.errors import UserError

EXTENTS = ("longest_side", "max_feret", "diagonal", "width", "height")

#: The reference cube's edge (cm) for a dataset whose ``dataset.json`` does not give one
#: (``cube_edge_cm``): the edge the MineralImage5k authors' size script takes.
FALLBACK_CUBE_EDGE_CM = 1.27


@dataclass(frozen=True)
class SizeConfig:
    """Settings of the estimator (all have defaults that fit the museum photos)."""

    cube_edge_cm: float = FALLBACK_CUBE_EDGE_CM
    extent: str = "longest_side"
    work_size: int = 512  # long side of the working copy the scene is parsed on
    min_image_side: int = 64
    min_cube_px: float = 12.0  # a smaller cube edge (full-res px) cannot set a scale
    min_cube_work_px: float = 8.0  # nor, on the working copy, can it be told from a speck
    max_cube_fraction: float = 0.5  # cube edge at most this fraction of the short side
    min_face_score: float = 1.5  # face contrast a cube must show (see size.cube.face_contrast)
    use_mineral_boxes: bool = True  # the release's OWL-ViT boxes, when a row has them
    mineral_box_min_confidence: float = 0.1
    use_text_boxes: bool = True  # the release's CRAFT text boxes, when given
    neutral_cube: bool = True  # of several cube-like objects, a lone grey one is the cube (flagged)
    abstain_on_cut_specimen: bool = False
    min_specimen_cubes: float = 1.0  # abstain when the specimen's extent is under this many cube edges

    def __post_init__(self):
        if not (np.isfinite(self.cube_edge_cm) and self.cube_edge_cm > 0):
            raise UserError(f"cube_edge_cm: must be a positive number of centimetres, got {self.cube_edge_cm!r}")
        if self.extent not in EXTENTS:
            raise UserError(f"extent: {self.extent!r} is not one of {', '.join(EXTENTS)}")
        if not (64 <= int(self.work_size) <= 4096):
            raise UserError(f"work_size: {self.work_size!r} is outside 64..4096 px")

    @classmethod
    def from_dict(cls, raw: dict[str, Any] | None, where: str = "size settings") -> "SizeConfig":
        """Build from a recipe mapping; unknown keys are a ``UserError`` naming them."""
        raw = dict(raw or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise UserError(f"{where}: unknown setting(s) {', '.join(unknown)} (known: {', '.join(sorted(known))})")
        return cls(**raw)


@dataclass
class SizeEstimate:
    """One photo's answer; boxes and polygons in full-resolution pixels of the image given."""

    size_cm: float = float("nan")  # NaN = abstained
    reason: str = ""  # why it abstained ('' when it answered)
    flags: list[str] = field(default_factory=list)  # doubts about an answer that was given
    px_per_cm: float = float("nan")
    cube_edge_px: float = float("nan")
    extent_px: float = float("nan")
    cube_polygon: list[list[float]] | None = None
    cube_bbox: list[float] | None = None
    specimen_bbox: list[float] | None = None
    label_boxes: list[list[float]] = field(default_factory=list)
    candidates: list[list[list[float]]] = field(default_factory=list)  # every cube-like outline found
    cube_score: float = float("nan")
    cube_fit_rms: float = float("nan")  # pin-hole cube fit's RMS error / edge (hexagons only)
    specimen_source: str = ""  # 'segmentation' or 'mineral_boxes'

    @property
    def answered(self) -> bool:
        return bool(np.isfinite(self.size_cm))

    def to_row(self) -> dict[str, Any]:
        """A flat record for a CSV/Parquet table of per-image details."""
        d = asdict(self)
        for key in ("flags",):
            d[key] = ";".join(d[key])
        for key in ("cube_polygon", "cube_bbox", "specimen_bbox", "label_boxes", "candidates"):
            d[key] = "" if d[key] is None else json.dumps(_round(d[key]))
        return d


def _round(obj):
    if isinstance(obj, (list, tuple)):
        return [_round(v) for v in obj]
    return round(float(obj), 1)
