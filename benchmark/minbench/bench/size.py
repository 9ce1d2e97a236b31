"""``minbench bench size``: photos/s of the cube-based size estimator at 1024x768, per core.

On the size split of a dataset (the embedded one by default), photos are brought to
1024x768 (the release's size; the embedded ``small`` photos already are) and measured in
one process with OpenCV on one thread, so the figure is per CPU core:

- ``estimator``: our estimator on decoded photos (what ``minbench run`` spends per photo);
- ``decode_and_estimate``: JPEG decode (OpenCV) + estimator, the cold path;
- ``authors_rule``: the authors' contour rule on the same photos (speed only).

``estimator_images_per_cpu_s`` counts this process's CPU time instead of wall time: the
per-core rate even when other work shares the machine (the load average is reported).
With ``--workers N`` the estimator also runs in N processes at once (throughput scaling).
On the same photos, coverage and MAE of both methods against the manifest's sizes are
reported (only photos already 1024x768 count, so the truth is not rescaled).
"""

from __future__ import annotations

import math
import time
from pathlib import Path


SIZE = (1024, 768)


def _load(data_dir, n: int):
    import cv2
    import numpy as np

    from minbench.data.manifest import read_manifest

    frame = read_manifest(data_dir)
    rows = frame[frame["size"]].head(n)
    if rows.empty:
        rows = frame.head(n)
    photos, blobs, truth = [], [], []
    for path, true_cm in zip(rows["image_path"], rows["size_cm"]):
        raw = (data_dir / path).read_bytes()
        img = cv2.imdecode(np.frombuffer(raw, np.uint8), cv2.IMREAD_COLOR)
        if img is None:
            continue
        native = img.shape[1] == SIZE[0] and img.shape[0] == SIZE[1]
        if not native:
            img = cv2.resize(img, SIZE, interpolation=cv2.INTER_AREA)
            ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 92])
            raw = buf.tobytes()
        photos.append(np.ascontiguousarray(img[:, :, ::-1]))
        blobs.append(raw)
        truth.append(float(true_cm) if native else math.nan)
    return photos, blobs, truth


def _best_rate(fn, items, repeat: int, clock=time.perf_counter) -> float:
    best = math.inf
    for _ in range(max(1, repeat)):
        started = clock()
        for it in items:
            fn(it)
        best = min(best, clock() - started)
    return len(items) / best if best > 0 else math.nan


def _worker_rate(args) -> float:
    blobs, repeat = args
    import cv2
    import numpy as np

    from minbench.models.size import SizeEstimator

    cv2.setNumThreads(1)
    est = SizeEstimator()
    photos = [cv2.imdecode(np.frombuffer(b, np.uint8), cv2.IMREAD_COLOR)[:, :, ::-1] for b in blobs]
    return _best_rate(est.estimate, photos, repeat)


def bench_size(*, data: Path | None = None, n: int = 100, repeat: int = 2, workers: int = 0) -> dict:
    """Photos/s of the size estimator (and the authors' rule) on ``n`` photos of ``data``'s size
    split, best of ``repeat`` passes; with ``workers``, also in that many processes."""
    import os

    import cv2
    import numpy as np

    from minbench.data.locate import resolve_dataset
    from minbench.errors import UserError
    from minbench.models.size_authors import authors_estimate
    from minbench.models.size import SizeEstimator
    from minbench.scoring.metrics import size_metrics
    from minbench.cards import get_card

    if n < 1 or repeat < 1 or workers < 0:
        raise UserError("--n and --repeat must be >= 1, --workers >= 0")
    data_dir = resolve_dataset(Path(data) if data else None)
    photos, blobs, truth = _load(data_dir, n)
    if not photos:
        raise UserError(f"{data_dir}: no readable photos to time")
    cv2.setNumThreads(1)
    est = SizeEstimator()
    est.estimate(photos[0])  # warm-up (imports, caches)

    results = [est.estimate(p) for p in photos]
    rate_est = _best_rate(est.estimate, photos, repeat)
    # CPU seconds of this (single-threaded) process: the per-core rate even on a machine
    # shared with other work, where wall time would count the waiting too
    rate_cpu = _best_rate(est.estimate, photos, repeat, clock=time.process_time)
    rate_cold = _best_rate(lambda b: est.estimate(cv2.imdecode(np.frombuffer(b, np.uint8), cv2.IMREAD_COLOR)[:, :, ::-1]),
                           blobs, repeat)
    authors = [authors_estimate(p, r.specimen_bbox, exclude_boxes=r.label_boxes) for p, r in zip(photos, results)]
    rate_auth = _best_rate(lambda pr: authors_estimate(pr[0], pr[1].specimen_bbox, exclude_boxes=pr[1].label_boxes),
                           list(zip(photos, results)), repeat)

    out = {
        "benchmark": "size",
        "dataset": str(data_dir),
        "photos": len(photos),
        "resolution": f"{SIZE[0]}x{SIZE[1]}",
        "threads": "opencv 1 thread, 1 process",
        "estimator_images_per_s_per_core": rate_est,
        "estimator_ms_per_image": 1000.0 / rate_est,
        "estimator_images_per_cpu_s": rate_cpu,
        "load_average_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "decode_and_estimate_images_per_s_per_core": rate_cold,
        "authors_rule_images_per_s_per_core": rate_auth,
    }
    if workers:
        from multiprocessing import get_context

        chunks = [blobs[i::workers] for i in range(workers)]
        with get_context("spawn").Pool(workers) as pool:
            started = time.perf_counter()
            rates = pool.map(_worker_rate, [(c, repeat) for c in chunks])
            wall = time.perf_counter() - started
        out[f"estimator_images_per_s_{workers}_processes"] = float(sum(rates))
        out["cpu_cores_visible"] = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        out["workers_wall_s"] = wall
    true = np.array(truth)
    scored = np.isfinite(true)
    if scored.any():
        card = get_card("size")
        ours = np.array([r.size_cm for r in results])[scored]
        auth = np.array([a.size_cm for a in authors])[scored]
        out["compared_on"] = int(scored.sum())
        out["ours"] = {k: size_metrics(card, ours, true[scored])[k] for k in ("mae", "coverage")}
        out["authors_rule"] = {k: size_metrics(card, auth, true[scored])[k] for k in ("mae", "coverage")}
        out["mean_true_cm"] = float(true[scored].mean())
    return out
