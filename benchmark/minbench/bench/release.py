"""``minbench bench release``: how long ``data prepare`` and ``data check`` take at scale.

Writes ``--n`` photo-like JPEGs (long side ``--long-side``, the release's 1024 by default)
in the release's layout, with a ``minerals_full.csv`` listing 50% more rows than there
are photos (as the real, incomplete release does), then times: ``prepare`` cold and
re-run (header reads only), ``check`` quick (headers), ``check`` in full (every photo
decoded in JPEG draft mode), and full-resolution decoding of a sample for comparison.
Rates are photos per second; ``*_31k_s`` extrapolates linearly to the release's ~31k
photos (fixed costs included, so an upper bound). Files were just written, so reads hit
the page cache: a first run on a cold disk also waits for ~5 GB of reads.
"""

from __future__ import annotations

import csv
import json
import tempfile
import time
from pathlib import Path


REAL_PHOTOS = 31_000


def _write_release(root: Path, n: int, long_side: int) -> int:
    """Photo-like JPEGs (smooth shapes + sensor noise) and the CSVs; returns total bytes written."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    w, h = long_side, long_side * 2 // 3
    bases = []  # eight noisy photos; each file is one of them, shifted, so no two files are equal
    for _ in range(8):
        low = Image.fromarray(rng.integers(0, 255, (6, 9, 3), dtype=np.uint8)).resize((w, h), Image.BICUBIC)
        noisy = np.asarray(low, dtype=np.float32) + rng.normal(0, 4, (h, w, 3)).astype(np.float32)
        bases.append(np.clip(noisy, 0, 255).astype(np.uint8))
    header = ["id", "path", "height", "width", "ru_name", "ru_species", "ru_variety", "ru_satellites",
              "en_species", "en_name", "en_variety", "en_satellites", "en_description", "text_boxes",
              "mineral_boxes"]
    rows, total = [], 0
    boxes = json.dumps([{"label": "a mineral", "confidence": 0.8, "box": [0.2, 0.2, 0.8, 0.8]}])
    for i in range(n * 3 // 2):
        coll = ("1_syst", "2_mest", "3_op", "4_cryst")[i % 4]
        sid = f"{coll.split('_')[0]}_{i}"
        path = f"data/{coll}/{sid}/FMM_{sid}.JPG"
        rows.append([sid, path, "4000", "6000", "Кварц", "кварц", "", "", "", f"species {i % 50}", "", "",
                     "a specimen", "[]", boxes])
        if i % 3 == 2:  # a third of the rows have no photo, as in the real release
            continue
        arr = np.roll(bases[i % 8], i, axis=1)
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(arr).save(target, quality=90)
        total += target.stat().st_size
    for name, rows_ in (("minerals_full.csv", rows), ("minerals_10.csv", rows[:200]), ("minerals_98.csv", rows[:400]),
                        ("minerals_360.csv", rows[:800])):
        with open(root / name, "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(header)
            writer.writerows(rows_)
    return total


def _timed(fn):
    t0 = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - t0


def bench_release(*, n: int = 1000, long_side: int = 1024, workdir: Path | None = None) -> dict:
    """Time ``data prepare`` and ``data check`` on ``n`` photo-like JPEGs in the release's layout."""
    from PIL import Image

    from minbench.data.check import check_dataset
    from minbench.data.release import prepare

    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        src, out = Path(tmp) / "release", Path(tmp) / "prepared"
        nbytes, t_write = _timed(lambda: _write_release(src, n, long_side))
        rep, t_prep = _timed(lambda: prepare(src, out))
        rep2, t_prep2 = _timed(lambda: prepare(src, out))
        quick, t_quick = _timed(lambda: check_dataset(out, quick=True))
        full, t_full = _timed(lambda: check_dataset(out))
        photos = sorted(src.glob("data/*/*/*.JPG"))[:100]

        def decode_full():
            for p in photos:
                with Image.open(p) as im:
                    im.load()
        _, t_dec = _timed(decode_full)
        n_photos = rep.rows_in_manifest
        result = {
            "photos": n_photos, "csv_rows": rep.rows_total, "missing": rep.missing_images,
            "long_side": long_side, "mean_jpeg_kb": round(nbytes / max(n_photos, 1) / 1024, 1),
            "write_s": round(t_write, 2),
            "prepare_s": round(t_prep, 3), "prepare_rerun_s": round(t_prep2, 3),
            "prepare_photos_per_s": round(n_photos / t_prep, 1),
            "check_quick_s": round(t_quick, 3), "check_full_s": round(t_full, 3),
            "check_full_photos_per_s": round(n_photos / t_full, 1),
            "full_res_decode_photos_per_s_1_thread": round(len(photos) / t_dec, 1),
            "same_fingerprint_on_rerun": rep.fingerprint == rep2.fingerprint,
            "check_ok": full.ok and quick.ok,
            "prepare_31k_s": round(REAL_PHOTOS / (n_photos / t_prep), 1),
            "check_full_31k_s": round(REAL_PHOTOS / (n_photos / t_full), 1),
        }
    return result
