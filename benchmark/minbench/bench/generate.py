"""``minbench bench generate``: how fast the embedded dataset is made (images/s), and where the time goes."""

from __future__ import annotations

import os
import resource
import tempfile
import time
from pathlib import Path



def stage_times(size: str, n: int, seed: int = 0) -> dict[str, float]:
    """Mean milliseconds per image of each stage, over the plan's first ``n`` images, in this process."""
    import cv2
    import numpy as np

    from minbench.data.synth.render import CRYSTAL, camera, render
    from minbench.data.synth.scene import sample_scene
    from minbench.data.synth.species import all_classes
    from minbench.data.synth.splits import make_plan, size_config

    cfg = size_config(size)
    classes = all_classes()
    rows = make_plan(classes, cfg, seed).rows[:n]
    totals = dict.fromkeys(("scene", "render", "camera", "jpeg", "png"), 0.0)
    for r in rows:
        rng = np.random.default_rng([seed, r.index])
        t0 = time.perf_counter()
        scene = sample_scene(classes[r.cls], rng, width=cfg.width, height=cfg.height,
                             satellite=classes[r.satellite] if r.satellite is not None else None)
        t1 = time.perf_counter()
        img, labels, _ = render(scene, rng)
        t2 = time.perf_counter()
        img = camera(img, scene, rng)
        t3 = time.perf_counter()
        cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, scene.jpeg_quality])
        t4 = time.perf_counter()
        cv2.imencode(".png", cv2.compare(labels, CRYSTAL, cv2.CMP_EQ))
        t5 = time.perf_counter()
        for k, dt in zip(totals, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4)):
            totals[k] += dt
    return {k: round(v / max(1, len(rows)) * 1000, 2) for k, v in totals.items()}


def _cpu_seconds() -> float:
    """User + system CPU time of this process and its finished children (the worker pool)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def bench_generate(*, size: str = "small", workers: int | None = None, limit: int | None = None, stages: int = 20,
                   seed: int = 0) -> dict:
    """Generation speed of the embedded dataset ``size`` (the whole of it, or the first ``limit``
    images of its plan) and, over ``stages`` images, the time per stage; the result as a dict."""
    from minbench.data.synth import GENERATOR_VERSION, check_seed, generate
    from minbench.data.synth.driver import IMAGES_DIR, MASKS_DIR, _run as render_all
    from minbench.data.synth.species import all_classes
    from minbench.data.synth.splits import make_plan, size_config
    from minbench.errors import UserError

    cfg = size_config(size)
    check_seed(seed)
    if limit is not None and limit < 1:
        raise UserError(f"--limit {limit}: must be at least 1")
    workers = workers or os.cpu_count() or 1
    result = {"benchmark": "generate", "size": cfg.name, "resolution": [cfg.width, cfg.height],
              "generator_version": GENERATOR_VERSION, "cpu_count": os.cpu_count(), "workers": workers}
    with tempfile.TemporaryDirectory(prefix="minbench-bench-generate-") as tmp:
        cpu0 = _cpu_seconds()
        t0 = time.perf_counter()
        if limit is None:
            info = generate(Path(tmp) / "data", seed=seed, size=cfg.name, workers=workers)
            n = info.n_samples
        else:
            rows = make_plan(all_classes(), cfg, seed).rows[: limit]
            (Path(tmp) / IMAGES_DIR).mkdir()
            (Path(tmp) / MASKS_DIR).mkdir()
            tasks = [(seed, r.index, r.cls, r.satellite, cfg.width, cfg.height, tmp) for r in rows]
            render_all(tasks, min(workers, len(tasks)))
            n = len(tasks)
        seconds = time.perf_counter() - t0
        cpu = _cpu_seconds() - cpu0
    # On a shared machine wall time depends on the neighbours; CPU time per image does much less,
    # and gives the rate the same workers would reach with their cores to themselves.
    result.update(images=n, seconds=round(seconds, 2), images_per_s=round(n / seconds, 2),
                  cpu_ms_per_image=round(cpu / n * 1000, 1),
                  images_per_s_on_free_cores=round(n / (cpu / min(workers, os.cpu_count() or 1)), 2),
                  whole_dataset=limit is None)
    if stages > 0:
        result["ms_per_image_single_process"] = stage_times(cfg.name, stages, seed)
    return result
