"""Zero-shot specimen size from the reference cube: locate, exclude, measure, convert.

``SizeEstimator.estimate(image)`` parses one photo (uint8 HxWx3) and returns the specimen's
extent in centimetres, or an abstention with its reason. Nothing is trained. Steps:

1. background model and object masks on a working copy (``size.background``);
2. cube candidates in every mask: hexagon (or one-face square) outlines that are cube-like,
   show flat faces of distinct shading, do not touch the frame and are not a facet inside
   a larger object; each is re-measured on the full-resolution photo, and a loose one must
   then prove regular; of several, one standing apart from the specimen or the only grey
   one is taken (flagged), else the photo is abstained on;
3. paper labels (pale flat rectangles with ink, or the release's CRAFT text boxes) are set
   aside; the specimen is the largest remaining object with its nearby pieces, measured on
   the edge mask (a soft shadow has no outline), or the release's OWL-ViT boxes;
4. px/cm = cube edge (px, at the cube's depth) / ``cube_edge_cm``; size = extent / px/cm.

What is measured is a setting (``extent``): the ground truth of the embedded data and of
the task card is the longest side of the specimen's axis-aligned box (``longest_side``).
The cube edge in cm is a setting too (the dataset's, else ``FALLBACK_CUBE_EDGE_CM``).
Sizes are never rounded (the authors' script truncates to whole centimetres).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from minbench.data.boxes import pixel_boxes
from minbench.models.size.background import Background, fit_background, object_masks, residual
from minbench.models.size.cube import (CubeFit, cube_shape, edge_vectors, face_contrast, flatness,
                                       perspective_edge, refine_polygon, shape_cost)
from minbench.models.size.geometry import box_area, box_of, extent_of, gap, inside_fraction, iou
from minbench.models.size.labels import label_score
from minbench.models.size.settings import SizeConfig, SizeEstimate


def as_rgb_uint8(image) -> tuple[np.ndarray, bool]:
    """Accept numpy or torch, HxW, HxWxC or CxHxW, any numeric dtype; return (HxWx3 uint8, grey?)."""
    if hasattr(image, "detach"):
        image = image.detach().cpu().numpy()
    arr = np.asarray(image)
    if arr.ndim == 3 and arr.shape[0] in (1, 3, 4) and arr.shape[2] not in (1, 3, 4):
        arr = np.transpose(arr, (1, 2, 0))
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] not in (3, 4):
        raise ValueError(f"image of shape {arr.shape} is not HxW, HxWx3 or HxWx4")
    arr = arr[:, :, :3]
    if arr.dtype != np.uint8:
        arr = arr.astype(np.float64)
        if arr.size and np.nanmax(arr) <= 1.0:
            arr = arr * 255.0
        arr = np.clip(np.nan_to_num(arr), 0, 255).astype(np.uint8)
    sub = arr[:: max(1, arr.shape[0] // 64), :: max(1, arr.shape[1] // 64)].astype(np.int16)
    grey = bool(sub.size) and int(np.abs(sub - sub[:, :, :1]).max()) <= 3
    return np.ascontiguousarray(arr), grey


@dataclass(eq=False)
class _Object:
    contour: np.ndarray  # Nx2 in working pixels
    area: float
    box: list[float]  # working pixels
    touches: bool
    kind: str = "other"  # 'cube', 'label', 'other'
    fit: CubeFit | None = None
    layer: str = ""  # the mask it was found in
    loose: bool = False  # cube-like only roughly (must prove regular once refined)


class SizeEstimator:
    """Classical specimen-size estimator (see the module docstring); thread-safe, stateless."""

    def __init__(self, config: SizeConfig | None = None):
        self.config = config or SizeConfig()

    # -- public -------------------------------------------------------------------------
    def estimate(self, image, *, mineral_boxes=None, text_boxes=None) -> SizeEstimate:
        """Estimate one photo's specimen size; never raises on a bad photo (abstains instead)."""
        try:
            img, grey = as_rgb_uint8(image)
        except ValueError as exc:
            return SizeEstimate(reason=f"unreadable image: {exc}")
        try:
            return self._estimate(img, grey, mineral_boxes, text_boxes)
        except Exception as exc:  # noqa: BLE001 - a photo must never stop a whole run
            return SizeEstimate(reason=f"estimator failed on this image ({type(exc).__name__}: {exc})")

    # -- steps --------------------------------------------------------------------------
    def _estimate(self, img: np.ndarray, grey: bool, mineral_boxes, text_boxes) -> SizeEstimate:
        cfg = self.config
        H, W = img.shape[:2]
        if min(H, W) < cfg.min_image_side:
            return SizeEstimate(reason=f"image too small ({W}x{H} px; at least {cfg.min_image_side} px a side)")
        scale = min(1.0, cfg.work_size / max(H, W))  # working px per full px
        small = self._working_copy(img, scale)
        sh, sw = small.shape[:2]
        sx, sy = W / sw, H / sh  # full px per working px
        bg = fit_background(small)
        if bg.is_flat:
            return SizeEstimate(reason="blank image (no contrast)")
        masks = object_masks(small, bg)
        min_area = max(8.0, 2e-5 * sh * sw)
        layers = {name: self._objects(m, min_area) for name, m in masks.items()}
        objects = layers["union"]
        if not objects:
            return SizeEstimate(reason="nothing stands out from the background")
        flags = ["grayscale photo (cube found by shape and shading only)"] if grey else []

        text_px = [[v / s for v, s in zip(b, (sx, sy, sx, sy))]
                   for b in pixel_boxes(text_boxes, W, H)] if cfg.use_text_boxes else []
        cubes, refined, irregular, cut_cube = self._select_cubes(img, small, bg, layers, scale, sx, sy, flags)
        labels, pieces = self._sort_objects(small, objects, layers, cubes, text_px)
        est = SizeEstimate(flags=flags,
                           label_boxes=[self._to_full(o.box, sx, sy) for o in labels],
                           candidates=[((c.fit.polygon + 0.5) * [sx, sy] - 0.5).tolist() for c in cubes])
        if len(cubes) != 1:
            if not cubes:
                est.reason = ("no whole reference cube: a cube-like object is cut by the frame" if cut_cube
                              else "no regular cube outline (shadow or occlusion?)" if irregular
                              else "no reference cube found")
            else:
                est.reason = f"{len(cubes)} cube-like objects found (expected exactly one reference cube)"
            self._specimen(img, small, pieces, mineral_boxes, est, sx, sy)
            return est
        return self._measure(img, small, pieces, mineral_boxes, est, refined[id(cubes[0])], sx, sy)

    @staticmethod
    def _working_copy(img: np.ndarray, scale: float) -> np.ndarray:
        """The photo at ``scale`` (area resampling), lightly blurred: what the scene is parsed on."""
        import cv2

        H, W = img.shape[:2]
        if scale < 1.0:
            small = cv2.resize(img, (max(1, round(W * scale)), max(1, round(H * scale))), interpolation=cv2.INTER_AREA)
        else:
            small = img
        return cv2.GaussianBlur(small, (3, 3), 0)

    def _select_cubes(self, img, small, bg: Background, layers: dict[str, list[_Object]], scale: float,
                      sx: float, sy: float, flags: list[str]):
        """The reference-cube candidates that survive every test: (cubes, their full-resolution
        fits by ``id``, the loose ones that proved irregular, whether a cube seems cut by the
        frame). A preference among several is noted in ``flags``."""
        # The cube is looked for in every mask (colour difference, closed edges, both): a
        # face lit like the background drops out of one and not of another.
        cubes, cut_cube = self._find_cubes(img, small, layers, scale)
        # a cube-like facet inside a larger object is a crystal of the specimen, not the cube
        # (judged on the edge layer, where a shadow does not join the cube to the specimen)
        cubes = [c for c in cubes if not any(
            box_area(o.box) > 6.0 * box_area(c.box) and inside_fraction(c.box, [o.box]) > 0.6
            for o in layers["edges"])]
        # every candidate is re-measured on the full-resolution photo; a loose one must then
        # prove to be a regular cube outline
        refined = {id(c): self._refine_cube(img, bg, c, scale, sx, sy) for c in cubes}
        irregular = [c for c in cubes if c.loose and not refined[id(c)].regular()]
        cubes = [c for c in cubes if all(c is not x for x in irregular)]
        if len(cubes) > 1:
            cubes, note = self._prefer_apart(small, cubes, layers["edges"])
            if len(cubes) > 1 and self.config.neutral_cube:
                cubes, note = self._prefer_neutral(small, cubes)
            if note:
                flags.append(note)
        return cubes, refined, irregular, cut_cube

    def _sort_objects(self, small, objects: list[_Object], layers: dict[str, list[_Object]],
                      cubes: list[_Object], text_px) -> tuple[list[_Object], list[_Object]]:
        """Mark each object as the cube, a label or other; returns (labels, the pieces the
        specimen is measured on)."""
        def is_cube(o: _Object) -> bool:
            return any(iou(o.box, c.box) > 0.3 or inside_fraction(o.box, [c.box]) > 0.6 for c in cubes)

        for o in objects:
            if is_cube(o):
                o.kind = "cube"
            elif self._is_label(small, o, text_px):
                o.kind = "label"
        labels = [o for o in objects if o.kind == "label"]
        # The specimen is measured on the edge layer: a soft shadow has no sharp outline.
        pieces = layers["edges"] or objects
        for o in pieces:
            if is_cube(o):
                o.kind = "cube"
            elif any(inside_fraction(o.box, [lb.box]) > 0.6 for lb in labels):
                o.kind = "label"
        return labels, pieces

    def _measure(self, img, small, pieces: list[_Object], mineral_boxes, est: SizeEstimate, fit: CubeFit,
                 sx: float, sy: float) -> SizeEstimate:
        """Scale from the one cube's fit, the specimen's extent, and the size (or why not)."""
        cfg = self.config
        est.cube_polygon = fit.polygon.tolist()
        est.cube_bbox = box_of(fit.polygon)
        est.cube_edge_px = fit.edge_px
        est.cube_score = fit.face_score
        est.cube_fit_rms = fit.pinhole_rms
        if fit.edge_px < cfg.min_cube_px:
            est.reason = f"cube too small to set a scale ({fit.edge_px:.1f} px edge)"
            return est
        est.px_per_cm = fit.edge_px / cfg.cube_edge_cm
        spec = self._specimen(img, small, pieces, mineral_boxes, est, sx, sy)
        if spec is None:
            est.reason = "no specimen found beside the cube"
            return est
        box, pts, touches = spec
        est.extent_px = extent_of(box, pts, cfg.extent)
        if touches:
            est.flags.append("specimen cut by the frame (size is a lower bound)")
            if cfg.abstain_on_cut_specimen:
                est.reason = "specimen cut by the frame"
                return est
        if est.extent_px < cfg.min_specimen_cubes * est.cube_edge_px:
            # museum specimens outsize the cube: a smaller 'specimen' means the objects were
            # mistaken for each other (a cubic crystal taken for the cube), or a speck
            est.reason = (f"the specimen found ({est.extent_px:.0f} px) is smaller than the cube "
                          f"({est.cube_edge_px:.0f} px): cube or specimen mistaken")
            return est
        est.size_cm = est.extent_px / est.px_per_cm
        return est

    @staticmethod
    def _objects(mask: np.ndarray, min_area: float) -> list[_Object]:
        import cv2

        sh, sw = mask.shape[:2]
        contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        out = []
        for c in contours:
            area = float(cv2.contourArea(c))
            if area < min_area:
                continue
            pts = c.reshape(-1, 2).astype(np.float64)
            box = box_of(pts)
            touches = box[0] <= 1 or box[1] <= 1 or box[2] >= sw - 2 or box[3] >= sh - 2
            out.append(_Object(contour=pts, area=area, box=box, touches=touches))
        return out

    @staticmethod
    def _to_full(box, sx, sy) -> list[float]:
        return [box[0] * sx, box[1] * sy, (box[2] + 1) * sx, (box[3] + 1) * sy]

    def _find_cubes(self, img, small, layers: dict[str, list[_Object]], scale: float):
        """Cube-like outlines over all masks, one per place (the best fit); and whether a
        cube seems cut by the frame."""
        import cv2

        cfg = self.config
        sh, sw = small.shape[:2]
        max_edge = cfg.max_cube_fraction * min(sh, sw)
        min_edge = max(cfg.min_cube_work_px, cfg.min_cube_px * scale)
        found: list[_Object] = []
        cut_cube = False
        tried: set = set()
        for name, objects in layers.items():
            for o in objects:
                bw, bh = o.box[2] - o.box[0], o.box[3] - o.box[1]
                if not (min_edge <= max(bw, bh) <= 2.2 * max_edge) or not (0.4 <= bw / max(bh, 1) <= 2.5):
                    continue
                key = (tuple(o.box), len(o.contour))  # the same outline in two masks: test once
                if key in tried:
                    continue
                tried.add(key)
                hull_area = float(cv2.contourArea(cv2.convexHull(o.contour.astype(np.float32))))
                if hull_area < 0.45 * bw * bh and not o.touches:  # a cube's outline fills its box
                    continue
                fit = cube_shape(o.contour)
                if fit is None:
                    continue
                strict = fit.shape_ok
                if (strict or fit.shape_loose) and min_edge <= fit.edge_px <= max_edge:
                    fit.face_score, fit.junction = face_contrast(small, fit)
                    # a loose outline must show clearly distinct faces; a square, one flat face
                    # (two faces lit alike also make a four-cornered outline, of a wrong size)
                    need = cfg.min_face_score if strict else 4 * cfg.min_face_score
                    if fit.face_score < (max(need, 4.0) if len(fit.polygon) == 4 else need):
                        continue
                    o.loose = not strict
                    if o.touches:
                        cut_cube = True
                        continue
                    o.fit = fit
                    o.layer = name
                    same = [c for c in found if iou(c.box, o.box) > 0.3 or inside_fraction(c.box, [o.box]) > 0.6
                            or inside_fraction(o.box, [c.box]) > 0.6]
                    if not same:
                        found.append(o)
                    elif min(self._rank(o), *(self._rank(c) for c in same)) == self._rank(o):
                        found = [c for c in found if all(c is not x for x in same)] + [o]
                elif o.touches and fit.solidity > 0.9 and max(bw, bh) <= max_edge * 1.8 and not cut_cube:
                    # a small, convex, flat-faced object against the frame: most likely a clipped
                    # cube (judged at full resolution, where a rock's texture is not averaged away)
                    full = (o.contour + 0.5) / scale - 0.5
                    cut_cube = flatness(img, full) > 0.6
        return found, cut_cube

    # The same cube found in several masks: closed edges trace it most tightly (a soft
    # shadow has no edge), then colour without shadows, then colour.
    _LAYER_ORDER = {"smooth": 0, "edges": 1, "solid": 2, "union": 3, "strong": 4}

    def _rank(self, o: _Object) -> tuple[bool, int, float]:
        return o.loose, self._LAYER_ORDER.get(o.layer, 9), shape_cost(o.fit)

    @staticmethod
    def _prefer_apart(small, cubes: list[_Object], pieces: list[_Object]) -> tuple[list[_Object], str]:
        """Of several cube-like objects keep the one that stands apart: one right beside the
        largest object (the specimen) is most likely a crystal broken off it."""
        others = [o for o in pieces if not any(iou(o.box, c.box) > 0.3 or inside_fraction(o.box, [c.box]) > 0.6
                                               for c in cubes)]
        if not others:
            return cubes, ""
        main = max(others, key=lambda o: box_area(o.box))
        reach = 0.03 * float(np.hypot(*small.shape[:2]))
        apart = [c for c in cubes if gap(c.box, main.box) > reach]
        if len(apart) == 1:
            return apart, f"{len(cubes)} cube-like objects: took the one apart from the specimen as the reference cube"
        return cubes, ""

    @staticmethod
    def _prefer_neutral(small, cubes: list[_Object]) -> tuple[list[_Object], str]:
        """Of several cube-like objects keep the one grey one, if exactly one is grey and the
        others clearly coloured (a reference cube is neutral; crystals rarely are)."""
        import cv2

        chroma = []
        for c in cubes:
            m = np.zeros(small.shape[:2], np.uint8)
            cv2.fillConvexPoly(m, np.round(c.fit.polygon).astype(np.int32), 1)
            mean = np.array(cv2.mean(small, mask=m)[:3])
            chroma.append(float((mean.max() - mean.min()) / max(mean.mean(), 1.0)))
        grey = [c for c, k in zip(cubes, chroma) if k < 0.2]
        if len(grey) == 1 and all(k > 0.35 for c, k in zip(cubes, chroma) if c is not grey[0]):
            return grey, f"{len(cubes)} cube-like objects: took the only grey one as the reference cube"
        return cubes, ""

    @staticmethod
    def _is_label(small, o: _Object, text_px) -> bool:
        if text_px:
            inside = [t for t in text_px if inside_fraction(t, [o.box]) > 0.5]
            if inside:
                u = [min(t[0] for t in inside), min(t[1] for t in inside),
                     max(t[2] for t in inside), max(t[3] for t in inside)]
                area = max((o.box[2] - o.box[0]) * (o.box[3] - o.box[1]), 1e-9)
                if (u[2] - u[0]) * (u[3] - u[1]) / area > 0.2:
                    return True
        return label_score(small, o.contour) >= 0.99

    def _refine_cube(self, img, bg: Background, cube: _Object, scale: float, sx: float, sy: float) -> CubeFit:
        """Re-measure the cube on a full-resolution crop (its edge sets the scale of every size)."""
        import cv2

        coarse = cube.fit
        H, W = img.shape[:2]
        poly = (coarse.polygon + 0.5) * [sx, sy] - 0.5  # working pixel centres -> full pixels
        margin = 0.3 * coarse.edge_px * max(sx, sy) + 6
        x0, y0 = np.floor(poly.min(axis=0) - margin).astype(int)
        x1, y1 = np.ceil(poly.max(axis=0) + margin).astype(int)
        x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, W), min(y1, H)
        crop = img[y0:y1, x0:x1]
        res = residual(crop, bg, x0=x0, y0=y0, full_w=W, full_h=H).astype(np.float32)
        res = cv2.GaussianBlur(res, (3, 3), 0)
        local = poly - [x0, y0]
        for _ in range(2):  # the second pass starts from the better vertices
            local = refine_polygon(res, local)
        return self._fit_from_polygon(local + [x0, y0], coarse, (W, H))

    @staticmethod
    def _fit_from_polygon(poly: np.ndarray, coarse: CubeFit, size: tuple[int, int] | None = None) -> CubeFit:
        ev = edge_vectors(poly)
        if ev is None:
            edge = coarse.edge_px
        else:
            vecs, _ = ev
            edge = float(np.sqrt(np.trace(vecs.T @ vecs) / 2))  # orthographic: any rotation
        rms = float("nan")
        if size is not None and len(poly) == 6:
            persp = perspective_edge(poly, *size)
            if persp is not None:
                rms = persp[1] / edge
                # trusted when the pin-hole cube fits the outline to a few per cent of its edge
                if rms < 0.03 and abs(persp[0] / edge - 1) < 0.1:
                    edge = persp[0]
        return CubeFit(polygon=poly, edge_px=edge, spread=coarse.spread, symmetry=coarse.symmetry,
                          fit_ratio=coarse.fit_ratio, solidity=coarse.solidity, face_score=coarse.face_score,
                          junction=coarse.junction, pinhole_rms=rms)

    def _specimen(self, img, small, objects, mineral_boxes, est: SizeEstimate, sx, sy):
        """Specimen box (full px), its outline points and whether it touches the frame."""
        cfg = self.config
        H, W = img.shape[:2]
        cube_full = est.cube_bbox
        label_full = est.label_boxes
        if cfg.use_mineral_boxes and mineral_boxes is not None:
            boxes = pixel_boxes(mineral_boxes, W, H, with_confidence=True)
            keep = []
            for box, conf in boxes:
                if conf < cfg.mineral_box_min_confidence:
                    continue
                if cube_full is not None and inside_fraction(box, [cube_full]) > 0.5:
                    continue
                if label_full and inside_fraction(box, label_full) > 0.5:
                    continue
                keep.append((box, conf))
            if keep:
                top = max(c for _, c in keep)
                chosen = [b for b, c in keep if c >= 0.5 * top]
                arr = np.array(chosen)
                box = [float(arr[:, 0].min()), float(arr[:, 1].min()), float(arr[:, 2].max()), float(arr[:, 3].max())]
                est.specimen_bbox = box
                est.specimen_source = "mineral_boxes"
                touches = box[0] <= 1 or box[1] <= 1 or box[2] >= W - 1 or box[3] >= H - 1
                corners = np.array([[box[0], box[1]], [box[2], box[3]]])
                return box, corners, touches
        rest = [o for o in objects if o.kind == "other"]
        if not rest:
            return None
        import cv2

        # an open outline encloses nothing: size pieces by their hull
        size = {id(o): float(cv2.contourArea(cv2.convexHull(o.contour.astype(np.float32)))) for o in rest}
        main = max(rest, key=lambda o: size[id(o)])
        sh, sw = small.shape[:2]
        reach = 0.03 * float(np.hypot(sh, sw))
        group = [main]
        union = list(main.box)
        changed = True
        while changed:  # pull in nearby pieces (crystals, satellites) that belong to the specimen
            changed = False
            for o in rest:
                if any(o is g for g in group) or size[id(o)] < 0.02 * size[id(main)]:
                    continue
                if gap(union, o.box) <= reach:
                    group.append(o)
                    union = [min(union[0], o.box[0]), min(union[1], o.box[1]),
                             max(union[2], o.box[2]), max(union[3], o.box[3])]
                    changed = True
        box = self._to_full(union, sx, sy)
        box = [max(box[0], 0.0), max(box[1], 0.0), min(box[2], float(W)), min(box[3], float(H))]
        pts = np.vstack([o.contour for o in group]) * [sx, sy]
        est.specimen_bbox = box
        est.specimen_source = "segmentation"
        return box, pts, any(o.touches for o in group)
