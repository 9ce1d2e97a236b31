"""The driver: plan the rows, render them (in parallel), write images, masks and the manifest.

Determinism: the plan comes from ``seed`` alone, and sample ``i`` draws every random choice
from its own generator seeded with ``(seed, i)``, so the output does not depend on how many
workers there are or in which order they finish. Atomicity: everything is written into a
temporary folder beside ``out`` that replaces ``out`` only once complete.
"""

from __future__ import annotations

import json
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from minbench.errors import UserError
from minbench.io import read_json

IMAGES_DIR, MASKS_DIR = "images", "masks"
# Below this many images a process pool costs more than it saves.
POOL_MIN_IMAGES = 300


def sample_id(index: int) -> str:
    return f"synth_{index:06d}"


def render_sample(task: tuple) -> dict[str, Any]:
    """Render, encode and write sample ``index``; returns its manifest fields (runs in workers)."""
    import cv2
    import numpy as np

    from minbench.data.synth.render import CRYSTAL, camera, render
    from minbench.data.synth.scene import achromatic, sample_scene
    from minbench.data.synth.species import all_classes

    seed, index, cls_i, sat_i, width, height, folder = task
    classes = all_classes()
    cls = classes[cls_i]
    sat = classes[sat_i] if sat_i is not None else None
    rng = np.random.default_rng([seed, index])
    scene = sample_scene(cls, rng, width=width, height=height, satellite=sat)
    img, labels, truth = render(scene, rng)
    img = camera(img, scene, rng)
    sid = sample_id(index)
    ok1, jpg = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, scene.jpeg_quality])
    ok2, png = cv2.imencode(".png", cv2.compare(labels, CRYSTAL, cv2.CMP_EQ))
    if not (ok1 and ok2):
        raise RuntimeError(f"could not encode sample {sid}")
    folder = Path(folder)
    (folder / IMAGES_DIR / f"{sid}.jpg").write_bytes(jpg.tobytes())
    (folder / MASKS_DIR / f"{sid}.png").write_bytes(png.tobytes())
    return {
        "sample_id": sid,
        "image_path": f"{IMAGES_DIR}/{sid}.jpg",
        "mask_path": f"{MASKS_DIR}/{sid}.png",
        "width": width,
        "height": height,
        "description": scene.description,
        "bbox": list(truth.bbox),
        "cube_bbox": list(truth.cube_bbox) if truth.cube_bbox is not None else None,
        "text_boxes": [list(b) for b in truth.text_boxes],
        "px_per_cm": round(truth.px_per_cm, 4),
        "size_cm": round(truth.size_cm, 4),
        "mask_pixels": truth.mask_pixels,
        "satellite_species": sat.family.species if sat is not None else "",
        "collection": scene.collection,
        # what the photo shows, for the dataset's realism statistics (dataset.json)
        "look": {"form": scene.form.kind, "lustre": next(c.lustre for c in scene.crystals if not c.satellite),
                 "achromatic": achromatic(next(c.rgb for c in scene.crystals if not c.satellite) * 255),
                 "cube": scene.cube_mode, "rock": scene.rock},
    }


def _worker_init() -> None:
    import cv2

    cv2.setNumThreads(1)   # one process per core already


WRITE_HINT = "choose another folder (--out, or MINBENCH_HOME for the cache)"


def _check_out(out: Path) -> None:
    """Refuse to replace a folder that is not a synth dataset (a typo in --out must not eat a home folder)."""
    if not out.exists():
        return
    if not out.is_dir():
        raise UserError(f"--out {out}: exists and is not a folder")
    if not any(out.iterdir()):
        return
    from minbench.data.manifest import DATASET_FILE

    try:
        described = read_json(out / DATASET_FILE, "dataset description", missing=None)
    except UserError:  # unreadable or not JSON: not ours either
        described = None
    if not isinstance(described, dict) or described.get("source") != "synth":
        raise UserError(f"--out {out}: exists and is not a synth dataset; refusing to replace it "
                        "(choose an empty or new folder)")


def generate(out: str | os.PathLike, *, seed: int = 0, size: str = "small", workers: int | None = None,
             progress: bool = False):
    """Generate the embedded dataset into ``out`` (replaced atomically) and return its ``DatasetInfo``."""
    from minbench.data import manifest
    from minbench.data.synth.options import GENERATOR_VERSION, check_seed
    from minbench.data.synth.species import all_classes
    from minbench.data.synth.splits import make_plan, size_config
    from minbench.io import atomic_path, ensure_writable, leftovers_of, remove_paths, storage_errors

    cfg = size_config(size)
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise UserError(f"--workers {workers!r}: must be an integer of at least 1")
    seed = check_seed(seed)
    out = Path(out).expanduser()
    _check_out(out)
    # a read-only or forbidden folder is named now, before anything is rendered
    ensure_writable(out.parent, f"the dataset {out.name}", WRITE_HINT)
    # a killed earlier generation's temporary beside `out` (never read as a dataset, but large)
    remove_paths(leftovers_of(out))
    classes = all_classes()
    plan = make_plan(classes, cfg, seed)
    n = len(plan.rows)
    n_workers = workers if workers is not None else (os.cpu_count() or 1)
    if workers is None and n < POOL_MIN_IMAGES:
        n_workers = 1
    n_workers = max(1, min(n_workers, n))
    t0 = time.perf_counter()
    # a full disk or a folder made read-only meanwhile: one line naming the folder, no half dataset
    with storage_errors(out.parent, f"the dataset {out.name}", WRITE_HINT), atomic_path(out) as tmp:
        (tmp / IMAGES_DIR).mkdir(parents=True)
        (tmp / MASKS_DIR).mkdir()
        tasks = [(seed, r.index, r.cls, r.satellite, cfg.width, cfg.height, str(tmp)) for r in plan.rows]
        bar = None
        if progress:
            from minbench.console import progress as phase

            bar = phase(f"synth {cfg.name} (seed {seed}, {n_workers} worker{'s' if n_workers > 1 else ''})", n,
                        marks=4 if n >= 500 else 0, unit="images")
        try:
            results = _run(tasks, n_workers, bar)
        except BaseException:
            if bar is not None:
                bar.close(stopped=True)
            raise
        df = _manifest_frame(plan, classes, results)
        seconds = time.perf_counter() - t0
        info = manifest.write_dataset(tmp, df, name="synth", version=GENERATOR_VERSION, source="synth",
                                      extra=_dataset_extra(cfg, seed, plan, classes, df, results))
    if bar is not None:  # its last line says what was made, where, how fast
        bar.fields = f"{n / max(seconds, 1e-9):.1f} images/s -> {out}"
        bar.close()
    return info


def _manifest_frame(plan, classes, results: list[dict[str, Any]]):
    """The manifest table: each planned row with what rendering it found."""
    import pandas as pd

    from minbench.data import manifest

    rows = []
    for r, res in zip(plan.rows, results):
        cls = classes[r.cls]
        row = manifest.empty_row()
        row.update(
            sample_id=res["sample_id"], image_path=res["image_path"], width=res["width"], height=res["height"],
            species=cls.label, species_ru="", variety=cls.variety,
            satellites=res["satellite_species"], collection=res["collection"], description=res["description"],
            fewshot_10=r.fewshot[0], fewshot_98=r.fewshot[1], fewshot_360=r.fewshot[2], zeroshot=r.zeroshot,
            segmentation=r.segmentation, size=r.size, mask_path=res["mask_path"], size_cm=res["size_cm"],
            px_per_cm=res["px_per_cm"], bbox=manifest.format_box(res["bbox"]),
            cube_bbox=manifest.format_box(res["cube_bbox"]),
            text_boxes=json.dumps([[round(float(v), 1) for v in b] for b in res["text_boxes"]]),
            mineral_boxes="", source="synth")
        rows.append(row)
    return pd.DataFrame(rows)


def _dataset_extra(cfg, seed: int, plan, classes, df, results: list[dict[str, Any]]) -> dict[str, Any]:
    """What ``dataset.json`` says beyond the manifest: the settings, the definitions of the
    truth, the class texts and the statistics (nothing run-dependent: same seed and size,
    same bytes)."""
    from minbench.data.manifest import CUBE_EDGE_KEY
    from minbench.data.synth.scene import CUBE_EDGE_CM, SIZE_ROUND_CM, class_text

    return {
        "seed": seed, "size": cfg.name, CUBE_EDGE_KEY: CUBE_EDGE_CM,
        "image_size": [cfg.width, cfg.height],
        "size_cm_definition": ("the specimen's longest physical dimension in 3-D (matrix + crystals; calipers "
                               f"over all directions), to {SIZE_ROUND_CM} cm; the specimen stands at its own "
                               "depth from the cube, so box / px_per_cm is only an estimate of it"),
        "px_per_cm_definition": "scale of the plane through the reference cube's centre",
        "mask_definition": ("pixels of the class's own mineral bodies (crystals or aggregate) as seen, "
                            "through translucency included; matrix, satellite minerals and the cube excluded"),
        "class_rule": ("a class is a species of the curated species table (data/synth/species.csv), with every "
                       "habit, form, colour and lustre the table gives it; its class text is the table's sentence"),
        "classes": {"fewshot_10": len(plan.fewshot_classes[0]), "fewshot_98": len(plan.fewshot_classes[1]),
                    "fewshot_360": len(plan.fewshot_classes[2]), "zeroshot": len(plan.zeroshot_classes)},
        "held_out_species": sorted(classes[i].family.species for i in plan.zeroshot_classes),
        "class_descriptions": {classes[i].label: class_text(classes[i])
                               for i in sorted(set(r.cls for r in plan.rows))},
        "stats": _stats(df, results),
    }


def _stats(df, results) -> dict[str, Any]:
    import numpy as np

    from minbench.cards import cards_of_kind

    def count(card, split: str = "test") -> int:  # the card's rule of which rows are its split
        return len(card.positions(df, split, allow_empty=True))

    (zeroshot,), (segmentation,), (size,) = (cards_of_kind(k) for k in ("zeroshot", "segmentation", "size"))
    counts = {card.split_column: {"train": count(card, "train"), "test": count(card)}
              for card in cards_of_kind("classification")}
    mask_share = [r["mask_pixels"] / (r["width"] * r["height"]) for r in results]
    return {
        "images": len(df),
        "fewshot": counts,
        "zeroshot_images": count(zeroshot),
        "segmentation_images": count(segmentation),
        "size_images": count(size),
        "with_satellite": int((df["satellites"] != "").sum()),
        "size_cm": {"min": float(df["size_cm"].min()), "median": float(df["size_cm"].median()),
                    "max": float(df["size_cm"].max())},
        "mask_share_median": round(float(np.median(mask_share)), 4),
        "achromatic_share": round(float(np.mean([r["look"]["achromatic"] for r in results])), 4),
        "metallic_share": round(float(np.mean([r["look"]["lustre"] in ("metallic", "submetallic")
                                               for r in results])), 4),
        "forms": _shares(r["look"]["form"] for r in results),
        "lustres": _shares(r["look"]["lustre"] for r in results),
        "cube": _shares(r["look"]["cube"] for r in results),
        "rocks": _shares(r["look"]["rock"] for r in results),
        "collections": _shares(r["collection"] for r in results),
    }


def _shares(values) -> dict[str, float]:
    from collections import Counter

    counts = Counter(values)
    total = sum(counts.values()) or 1
    return {k: round(v / total, 4) for k, v in sorted(counts.items())}


def _run(tasks: list[tuple], n_workers: int, bar=None) -> list[dict[str, Any]]:
    """Render every task, in order, in this process or a pool, advancing ``bar`` (a
    ``minbench.console`` phase) per image."""
    results: list[dict[str, Any]] = []
    if n_workers == 1:
        it = map(render_sample, tasks)
        pool = None
    else:
        import multiprocessing

        # spawn: safe even when the caller already runs threads (torch, cv2); costs ~1 s to start.
        pool = ProcessPoolExecutor(n_workers, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_worker_init)
        it = pool.map(render_sample, tasks, chunksize=max(1, min(16, len(tasks) // (n_workers * 8))))
    try:
        for res in it:
            results.append(res)
            if bar is not None:
                bar.advance()
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
    return results
