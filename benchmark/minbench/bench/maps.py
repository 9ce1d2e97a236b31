"""``minbench bench maps``: time and peak memory of scoring a segmentation submission with
score maps (the bar: 160 photos at 1024 x 768 in at most 2 s and 1 GB).

Builds ``--images`` test rows (default 160, the embedded benchmark's segmentation set) at
``--size`` (default 1024 x 768) with true masks, and two submissions written by the format's
writer: masks with 16-bit CAM-like score maps, and the same masks alone. Times
``score_submission`` on each, the best of ``--repeat`` after a warm-up (reading and checking
every PNG, per-image counts and level histograms, every metric, the headline's interval).
Memory: a fresh process (as ``minbench score`` is) loads the task and scores the maps once;
its RSS before scoring and its peak are reported (this process's own would carry what
building the data left in the allocator). Also timed once: every metric's interval
(``ci_metrics="all"``: PxAP resampled on its exact histograms), and recording the entry with
its per-sample file. The load average is reported beside: on a shared machine timings move
with it.
"""

from __future__ import annotations

import os
import time

from minbench.bench.score import _best
from minbench.scoring.bootstrap import DEFAULT_RESAMPLES

BAR_S = 2.0
BAR_MB = 1024.0


def _fresh_score(task: str, predictions: str, data_dir: str, n_resamples: int) -> dict:
    """In a fresh process: load the task, then score ``predictions`` once; RSS (MB) before
    scoring and the process's peak after it, and the seconds it took."""
    from minbench.bench.cam import rss_mb
    from minbench.scoring.score import load_task_data, score_submission

    data = load_task_data(task, data_dir)
    before, _ = rss_mb()
    t0 = time.perf_counter()
    score_submission(task, predictions, task_data=data, n_resamples=n_resamples)
    seconds = time.perf_counter() - t0
    return {"rss_before_mb": before, "peak_rss_mb": rss_mb()[1], "cold_score_s": seconds}


def _in_fresh_process(fn, *args):
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(fn, *args).result()


def _write_submissions(folder, data, seed: int) -> None:
    """``maps/`` (masks with 16-bit score maps) and ``masks/`` (the same masks alone)."""
    import numpy as np

    from minbench.scoring import fixtures as F
    from minbench.scoring.formats.mask_pngs import load_true_mask, write_mask_folder

    rng = np.random.default_rng(seed)
    items = []
    for r in data.rows.itertuples(index=False):
        score = F.cam_like_map(load_true_mask(data.folder, r), rng)
        items.append((r.sample_id, score > 0.5, score))
    write_mask_folder(folder / "maps", items)
    write_mask_folder(folder / "masks", ((sid, mask) for sid, mask, _ in items))


def bench_maps(*, n_images: int = 160, width: int = 1024, height: int = 768,
               n_resamples: int = DEFAULT_RESAMPLES, repeat: int = 3, seed: int = 0) -> dict:
    """Time and peak memory of scoring ``n_images`` masks with score maps at ``width`` x
    ``height`` (and without maps, for the difference); the result as a dict."""
    import tempfile
    from pathlib import Path

    from minbench.errors import UserError
    from minbench.scoring import fixtures as F
    from minbench.scoring.formats.mask_pngs import decode_threads
    from minbench.scoring.leaderboard import add_entry, load_board
    from minbench.scoring.score import load_task_data, score_submission

    if n_images < 1 or width < 1 or height < 1 or repeat < 1:
        raise UserError("--images >= 1, a --size of positive sides and --repeat >= 1, please")
    task = "segmentation"
    with tempfile.TemporaryDirectory(prefix="minbench-bench-maps-") as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        F.make_segmentation_dataset(tmp / "data", n_images=n_images, width=width, height=height, seed=seed)
        data = load_task_data(task, tmp / "data")
        _write_submissions(tmp, data, seed)
        setup_s = time.perf_counter() - t0
        sub_mib = sum(p.stat().st_size for p in (tmp / "maps").rglob("*.png")) / 2**20

        def score(folder, ci="headline"):
            return score_submission(task, tmp / folder, task_data=data, n_resamples=n_resamples, ci_metrics=ci)

        memory = _in_fresh_process(_fresh_score, task, str(tmp / "maps"), str(tmp / "data"), n_resamples)
        score("maps")  # warm-up: imports, page cache
        maps_s, maps_cpu_s, result = _best(lambda: score("maps"), repeat)
        masks_s, _, _ = _best(lambda: score("masks"), repeat)
        ci_all_s, _, full = _best(lambda: score("maps", "all"), 1)
        record_s, _, board = _best(lambda: add_entry(task, result, name="maps", method="", source="submission",
                                                     leaderboard_dir=tmp / "boards"), 1)
        entry = load_board(board)["entries"][0]
        samples_kib = (board.parent / entry["samples"]["file"]).stat().st_size / 2**10
    return {
        "benchmark": "maps", "task": task, "images": n_images, "size": [width, height], "resamples": n_resamples,
        "threads": decode_threads(), "submission_mib": round(sub_mib, 1),
        "score_s": round(maps_s, 3), "score_cpu_s": round(maps_cpu_s, 3),
        "score_without_maps_s": round(masks_s, 3),
        "peak_rss_mb": round(memory["peak_rss_mb"], 1), "rss_before_mb": round(memory["rss_before_mb"], 1),
        "cold_score_s": round(memory["cold_score_s"], 3),
        "bar_s": BAR_S, "bar_mb": BAR_MB, "within_bar": bool(maps_s <= BAR_S and memory["peak_rss_mb"] <= BAR_MB),
        "score_all_intervals_s": round(ci_all_s, 3),
        "record_s": round(record_s, 3), "per_sample_kib": round(samples_kib, 1),
        "pxap": result.metrics["pxap"], "pxap_ci": [full.ci["pxap"]["low"], full.ci["pxap"]["high"]],
        "miou": result.metrics["miou"],
        "load_average": [round(x, 2) for x in os.getloadavg()], "cpus": os.cpu_count(),
        "setup_s": round(setup_s, 1), "repeat": repeat,
    }
