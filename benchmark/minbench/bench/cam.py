"""``minbench bench cam``: batched CAM versus one image at a time, and memory over many images.

Speed: the same model, method and images, CAM + mask at the image's resolution, once in
batches of ``--batch`` and once image by image (images/s of each and the ratio).
The model's own forward + backward, batched and single, is timed too: on a CPU the
CAM's batching gain cannot exceed the model's (``model_speedup_ceiling``).
Memory: ``--n`` images (default 1,000) through the batched path, RSS sampled after every
batch: start (after a warm-up batch), end, peak and the growth per 1,000 images. A leak of
hooks, activations or retained graphs shows as growth; flat means bounded by the batch.
"""

from __future__ import annotations

import time


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


def _masks(extractor, images, size, threshold="otsu"):
    from minbench.models.masking import cam_to_mask

    out = extractor(images)
    return [cam_to_mask(c, size, threshold=threshold) for c in out.cams]


def bench_cam(*, backbone: str | None = None, image_size: int | None = None, mask_size=(768, 1024),
              cam: str = "gradcam", batch: int = 16, n_speed: int = 64, n: int = 1000,
              threads: int | None = None) -> dict:
    """CAM images/s batched vs one at a time (``n_speed`` images), and RSS over ``n`` images
    (0 skips the memory run); the result as a dict."""
    import timm
    import torch

    from minbench.errors import UserError
    from minbench.models.cam import CamExtractor

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
    try:
        model = timm.create_model(backbone, pretrained=False, num_classes=10, **kwargs)
    except RuntimeError as exc:
        raise UserError(f"--backbone {backbone!r}: {exc}") from None
    model.eval()
    size = tuple(mask_size)
    ex = CamExtractor(model, cam, image_size=image_size)
    gen = torch.Generator().manual_seed(0)
    images = torch.randn(n_speed, 3, image_size, image_size, generator=gen)

    def timed(batch: int) -> float:
        _masks(ex, images[:batch], size)  # warm-up (allocator, first-call costs)
        t0 = time.perf_counter()
        for i in range(0, len(images), batch):
            _masks(ex, images[i:i + batch], size)
        return len(images) / (time.perf_counter() - t0)

    def timed_model(batch: int) -> float:
        # The ceiling: the model's own forward + backward (what any CAM must pay),
        # without CAM bookkeeping or mask making.
        def step(x):
            x = x.clone().requires_grad_(True)
            model(x).amax(-1).sum().backward()

        for p in model.parameters():
            p.requires_grad_(False)
        step(images[:batch])
        t0 = time.perf_counter()
        for i in range(0, len(images), batch):
            step(images[i:i + batch])
        return len(images) / (time.perf_counter() - t0)

    with torch.inference_mode():  # as in Lightning's predict loop
        batched = timed(batch)
        single = timed(1)
    model_batched, model_single = timed_model(batch), timed_model(1)
    result = {
        "benchmark": "cam",
        "backbone": backbone, "model_kwargs": kwargs, "cam": cam, "image_size": image_size,
        "mask_size": list(size), "target_layers": ex.layer_names, "torch_threads": torch.get_num_threads(),
        "speed": {"n_images": n_speed, "batch": batch,
                  "batched_images_per_s": round(batched, 2), "single_images_per_s": round(single, 2),
                  "speedup": round(batched / single, 2),
                  "model_fwd_bwd_batched_images_per_s": round(model_batched, 2),
                  "model_fwd_bwd_single_images_per_s": round(model_single, 2),
                  "model_speedup_ceiling": round(model_batched / model_single, 2)},
    }
    if n:
        result["memory"] = _memory(ex, size, n=n, batch=batch, image_size=image_size)
    return result


def _memory(ex, size, *, n: int, batch: int, image_size: int) -> dict:
    import gc

    import torch

    gen = torch.Generator().manual_seed(1)
    samples = []
    start = None
    done = 0
    t0 = time.perf_counter()
    with torch.inference_mode():
        while done < n:
            b = min(batch, n - done)
            x = torch.randn(b, 3, image_size, image_size, generator=gen)
            _masks(ex, x, size)
            done += b
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
