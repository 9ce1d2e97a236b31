"""``minbench bench cam``: the segmentation predict step's throughput against its ceiling, and
memory over many images.

Speed: ``--n-speed`` photos in batches of ``--batch`` through the whole per-batch path of
``run --task segmentation`` (``SegmentationTask.predict_step``: CAM, score map at the
photo's size, mask; ``MaskWriter``: mask, 16-bit map and CAM PNGs), images/s, beside the
classifier's own forward + backward at the same input (what any gradient CAM pays), timed
one after the other in the same process: ``ratio`` = end to end / model; then the same path
with each refinement (``--refine``: GrabCut, superpixels) and the milliseconds it adds a photo.
Memory: ``--n`` images (default 1,000) through CAM + mask (no writing), RSS sampled after every
batch: start (after a warm-up batch), end, peak and the growth per 1,000 images. A leak of
hooks, activations or retained graphs shows as growth; flat means bounded by the batch.
"""

from __future__ import annotations

import time
from pathlib import Path


def rss_mb() -> tuple[float, float]:
    """(current RSS, peak RSS) of this process in MB, from /proc (Linux)."""
    cur = peak = float("nan")
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    cur = int(line.split()[1]) / 1024
                elif line.startswith("VmHWM:"):
                    peak = int(line.split()[1]) / 1024
    except OSError:
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return cur, peak


def _default_classifier() -> tuple[str, dict, int]:
    """Backbone, timm kwargs and input size of the classifier `run --task segmentation` trains."""
    from minbench.recipes import load_recipe, shipped_recipes
    from minbench.pipelines.segmentation_classifier import CLASSIFIER_RECIPE

    recipe = shipped_recipes().get(CLASSIFIER_RECIPE)
    if recipe is None:
        return "resnet18", {}, 96
    config = load_recipe(recipe)
    init = config["model"]["init_args"]
    kwargs = {k: v for k, v in dict(init.get("model_kwargs") or {}).items() if k != "drop_rate"}
    return str(init.get("backbone", "resnet18")), kwargs, int(config["data"]["init_args"].get("image_size", 96))


def _default_segmentation_args() -> dict:
    """``model.init_args`` of the default segmentation recipe ({} on a bare install)."""
    from minbench.pipelines.kinds import default_recipe
    from minbench.recipes import load_recipe, shipped_recipes

    recipe = shipped_recipes().get(default_recipe("segmentation") or "")
    return dict(load_recipe(recipe)["model"].get("init_args") or {}) if recipe is not None else {}


def _default_cam_scale() -> float:
    """``cam_scale`` of the default segmentation recipe (1 when it has none)."""
    return float(_default_segmentation_args().get("cam_scale") or 1.0)


def _refine_settings(name: str) -> dict | None:
    """The default recipe's settings for refinement ``name`` when it is the recipe's own
    refinement (the path `run --task segmentation` takes); None (the defaults) otherwise."""
    args = _default_segmentation_args()
    return args.get("refine_args") if args.get("refine") == name else None


def _batches(task, n: int, batch: int, mask_size, seed: int):
    """``n`` random photos as the data module's segmentation batches (at the CAM's input side)."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    side = task.input_size
    for start in range(0, n, batch):
        b = min(batch, n - start)
        yield {"image": torch.randn(b, 3, side, side, generator=gen),
               "orig_size": torch.tensor([list(mask_size)] * b),
               "sample_id": [f"s{start + i:05d}" for i in range(b)]}


def bench_cam(*, backbone: str | None = None, image_size: int | None = None, mask_size=(768, 1024),
              cam: str = "gradcam", batch: int = 16, n_speed: int = 64, n: int = 1000,
              threads: int | None = None, cam_scale: float | None = None,
              refinements: tuple[str, ...] = ("grabcut", "superpixels")) -> dict:
    """The segmentation predict step end to end (CAM, score map, mask, PNG writing) in images/s
    beside the classifier's own batched forward + backward at the same input, over ``n_speed``
    images, then the same path with each of ``refinements``; RSS over ``n`` images of CAM +
    mask (0 skips the memory run). The result as a dict."""
    import tempfile

    import timm
    import torch

    from minbench.errors import UserError
    from minbench.models.refine import check_refine
    from minbench.trainers.segmentation import MaskWriter, SegmentationTask

    if batch < 1 or n_speed < 1 or n < 0:
        raise UserError("--batch and --n-speed must be >= 1, --n >= 0")
    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(0)
    if backbone is None:
        backbone, kwargs, size = _default_classifier()
    else:
        kwargs, size = {}, 96
    image_size = image_size or size
    cam_scale = _default_cam_scale() if cam_scale is None else cam_scale
    try:
        model = timm.create_model(backbone, pretrained=False, num_classes=10, **kwargs)
    except RuntimeError as exc:
        raise UserError(f"--backbone {backbone!r}: {exc}") from None

    def make_task(refine: str = "none") -> SegmentationTask:
        return SegmentationTask(model.eval(), classes=[str(i) for i in range(10)], cam=cam, image_size=image_size,
                                cam_scale=cam_scale, refine=refine, refine_args=_refine_settings(refine))

    task = make_task()
    size = tuple(mask_size)
    writer_threads = MaskWriter(".").threads
    timed = dict(n=n_speed, batch=batch, mask_size=size)

    with tempfile.TemporaryDirectory(prefix="minbench-bench-cam-") as tmp, torch.inference_mode():
        e2e = _end_to_end_rate(task, Path(tmp) / "predictions", **timed)  # as in Lightning's predict loop
        refined = {name: _end_to_end_rate(make_task(name), Path(tmp) / name / "predictions", **timed)
                   for name in refinements}
    ceiling = _fwd_bwd_rate(model, task, **timed)
    result = {
        "benchmark": "cam",
        "backbone": backbone, "model_kwargs": kwargs, "cam": cam, "image_size": image_size,
        "cam_input_size": task.input_size, "cam_cells": list(task.extractor.cells),
        "mask_size": list(size), "target_layers": task.extractor.layer_names,
        "torch_threads": torch.get_num_threads(), "writer_threads": writer_threads,
        "speed": {"n_images": n_speed, "batch": batch,
                  "end_to_end_images_per_s": round(e2e, 2),
                  "model_fwd_bwd_images_per_s": round(ceiling, 2),
                  "ratio": round(e2e / ceiling, 3)},
        # each refinement's whole path (on the CAM's own photo: the random one here; the
        # default recipe's settings for its own refinement), and the time it adds a photo
        "refinements": {name: {"end_to_end_images_per_s": round(rate, 2), "ratio": round(rate / ceiling, 3),
                               "added_ms_per_image": round(1000 * (1 / rate - 1 / e2e), 1),
                               "settings": check_refine(name, _refine_settings(name))}
                        for name, rate in refined.items()},
    }
    if n:
        result["memory"] = _memory(task, size, n=n, batch=batch)
    return result


def _end_to_end_rate(task, folder: Path, *, n: int, batch: int, mask_size) -> float:
    """Images/s of ``n`` photos through the predict step and the ``MaskWriter``, after a
    warm-up batch (allocator, first calls)."""
    from minbench.trainers.segmentation import MaskWriter

    writer = MaskWriter(folder, cam_dir=folder.with_name("cams"))
    writer.begin()
    task.predict_step(next(_batches(task, batch, batch, mask_size, 1)), 0)
    t0 = time.perf_counter()
    for b in _batches(task, n, batch, mask_size, 0):
        writer.write(task.predict_step(b, 0))
    writer.finish()
    return n / (time.perf_counter() - t0)


def _fwd_bwd_rate(model, task, *, n: int, batch: int, mask_size) -> float:
    """Images/s of the model's own forward + backward at the CAM's input: what any gradient
    CAM must pay."""
    def step(x):
        model(x.clone().requires_grad_(True)).amax(-1).sum().backward()

    for p in model.parameters():
        p.requires_grad_(False)
    step(next(_batches(task, batch, batch, mask_size, 1))["image"])
    t0 = time.perf_counter()
    for b in _batches(task, n, batch, mask_size, 0):
        step(b["image"])
    return n / (time.perf_counter() - t0)


def _memory(task, size, *, n: int, batch: int) -> dict:
    import gc

    import torch

    samples = []
    start = None
    done = 0
    t0 = time.perf_counter()
    with torch.inference_mode():
        for b in _batches(task, n, batch, size, 1):
            task.predict_step(b, 0)
            done += len(b["sample_id"])
            gc.collect()
            cur, _ = rss_mb()
            if start is None:
                start = cur  # after the first batch: allocator pools and lazy inits are in
            samples.append(cur)
    _, hwm = rss_mb()
    end = samples[-1]
    # Trend after warm-up (first 10 % of batches left out): least-squares slope of RSS
    # over images, per 1,000 images. Allocator noise averages out; a leak does not.
    import numpy as np

    tail = np.asarray(samples[max(1, len(samples) // 10):], dtype=float)
    slope = float(np.polyfit(np.arange(len(tail)) * batch, tail, 1)[0]) * 1000 if len(tail) > 2 else 0.0
    return {"n_images": done, "batch": batch, "seconds": round(time.perf_counter() - t0, 2),
            "rss_start_mb": round(start, 1), "rss_end_mb": round(end, 1),
            "rss_peak_sampled_mb": round(max(samples), 1), "rss_peak_process_mb": round(hwm, 1),
            "growth_mb": round(end - start, 1), "trend_mb_per_1000_images": round(slope, 1)}
