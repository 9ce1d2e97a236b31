"""Small made-up datasets and submissions, for the scorer's tests and ``minbench bench score``.

Only what scoring reads is made: manifest rows with species, splits, sizes and true
masks (tiny PNGs); no photographs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from minbench.data import manifest

SPECIES = ("quartz", "calcite", "fluorite", "pyrite", "malachite", "azurite", "galena", "sphalerite",
           "barite", "gypsum", "hematite", "magnetite", "beryl", "topaz", "garnet", "rhodochrosite")
ZEROSHOT_SPECIES = ("realgar", "orpiment", "cinnabar", "stibnite", "wulfenite")


def species_names(n: int) -> list[str]:
    """``n`` distinct species names (real ones first, then numbered)."""
    return [SPECIES[i] if i < len(SPECIES) else f"species-{i:05d}" for i in range(n)]


def _row(sid: str, species: str, w: int, h: int, **kw) -> dict:
    row = manifest.empty_row()
    row.update(sample_id=sid, image_path=f"img/{sid}.jpg", width=w, height=h, species=species, source="synth")
    row.update(kw)
    return row


def make_dataset(folder: str | Path, *, n_classes: int = 5, n_train: int = 3, n_test: int = 4,
                 n_seg: int = 6, n_size: int = 12, mask_size: tuple[int, int] = (12, 8),
                 seed: int = 0, name: str = "scoring-fixture", version: str = "1") -> manifest.DatasetInfo:
    """A tiny dataset folder: the fewshot-10/98/360 split columns (same rows), a zero-shot
    set, a segmentation set with true masks, and a size set."""
    rng = np.random.default_rng(seed)
    folder = Path(folder)
    w, h = mask_size
    rows = []
    for c, sp in enumerate(species_names(n_classes)):
        for i in range(n_train + n_test):
            split = "train" if i < n_train else "test"
            rows.append(_row(f"c{c}_{i}", sp, w, h, fewshot_10=split, fewshot_98=split, fewshot_360=split))
    for c, sp in enumerate(ZEROSHOT_SPECIES[:3]):
        for i in range(2):
            rows.append(_row(f"z{c}_{i}", sp, w, h, zeroshot=True))
    (folder / "masks").mkdir(parents=True, exist_ok=True)
    from minbench.scoring.formats.mask_pngs import write_mask

    for i in range(n_seg):
        mask = np.zeros((h, w), np.uint8)
        if i % 3:  # every third true mask is empty (the empty-mask rule gets exercised)
            y, x = rng.integers(0, h // 2), rng.integers(0, w // 2)
            mask[y:y + h // 2, x:x + w // 2] = 255
        write_mask(folder / "masks" / f"s{i}.png", mask)
        rows.append(_row(f"s{i}", "quartz", w, h, segmentation=True, mask_path=f"masks/s{i}.png"))
    for i in range(n_size):
        rows.append(_row(f"m{i}", "pyrite", w, h, size=True, size_cm=float(np.round(rng.uniform(1, 30), 2))))
    return manifest.write_dataset(folder, pd.DataFrame(rows), name=name, version=version, source="synth")


def make_classification_dataset(folder: str | Path, *, n_rows: int, n_classes: int, seed: int = 0,
                                column: str = "fewshot_360") -> manifest.DatasetInfo:
    """A dataset whose ``column`` test split has ``n_rows`` rows over ``n_classes`` species
    (plus one train row per class), for timing the scorer at scale."""
    rng = np.random.default_rng(seed)
    names = np.asarray(species_names(n_classes), dtype=object)
    species = names[rng.integers(0, n_classes, n_rows)]
    test = pd.DataFrame({"sample_id": [f"t{i:07d}" for i in range(n_rows)], "species": species,
                         "image_path": [f"img/t{i:07d}.jpg" for i in range(n_rows)], column: "test"})
    train = pd.DataFrame({"sample_id": [f"r{c:05d}" for c in range(n_classes)], "species": names,
                          "image_path": [f"img/r{c:05d}.jpg" for c in range(n_classes)], column: "train"})
    df = pd.concat([train, test], ignore_index=True)
    df["width"], df["height"], df["source"] = 64, 48, "synth"
    return manifest.write_dataset(folder, df, name="bench-classification", version="1", source="synth")


def make_segmentation_dataset(folder: str | Path, *, n_images: int, width: int, height: int,
                              seed: int = 0) -> manifest.DatasetInfo:
    """A dataset of ``n_images`` segmentation test rows at ``width`` x ``height`` whose true
    masks are random ellipses, for timing the scorer at scale."""
    from minbench.scoring.formats.mask_pngs import write_mask

    rng = np.random.default_rng(seed)
    folder = Path(folder)
    (folder / "masks").mkdir(parents=True, exist_ok=True)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    rows = []
    for i in range(n_images):
        (cx, cy), (ax, ay) = rng.uniform(0.3, 0.7, 2), rng.uniform(0.1, 0.3, 2)
        mask = ((xx / width - cx) / ax) ** 2 + ((yy / height - cy) / ay) ** 2 <= 1
        sid = f"s{i:05d}"
        write_mask(folder / "masks" / f"{sid}.png", mask)
        rows.append(_row(sid, "quartz", width, height, segmentation=True, mask_path=f"masks/{sid}.png"))
    return manifest.write_dataset(folder, pd.DataFrame(rows), name="bench-segmentation", version="1", source="synth")


def cam_like_map(true: np.ndarray, rng: np.random.Generator, cells: int = 7) -> np.ndarray:
    """A float score map in [0, 1] as a CAM gives one: a ``cells`` x ``cells`` grid leaning
    towards the mineral, noisy, bilinearly upsampled to the mask's size."""
    from PIL import Image

    h, w = true.shape
    coarse = np.asarray(Image.fromarray(true.astype(np.float32), mode="F").resize((cells, cells), Image.BOX))
    coarse = coarse + rng.normal(0, 0.3, coarse.shape).astype(np.float32)
    up = np.asarray(Image.fromarray(coarse, mode="F").resize((w, h), Image.BILINEAR), dtype=np.float64)
    return (up - up.min()) / max(float(up.max() - up.min()), 1e-9)


def ranked_submission(sample_ids, truth, classes, *, k: int = 10, accuracy: float = 0.5,
                      seed: int = 0, path: str | Path | None = None) -> pd.DataFrame:
    """A plausible ranked submission: the truth at a random rank for ``accuracy`` of rows;
    written to ``path`` (the format's own writer) when given."""
    from minbench.scoring.formats import ranked_csv

    rng = np.random.default_rng(seed)
    classes = np.asarray(classes, dtype=object)
    n, c = len(sample_ids), len(classes)
    k = min(k, c)
    truth_idx = pd.Index(classes).get_indexer(np.asarray(truth, dtype=object))
    # k distinct classes per row: a run of consecutive class indices from a random start
    start = rng.integers(0, c, n)
    ranked = (start[:, None] + np.arange(k)[None, :]) % c
    hit = rng.random(n) < accuracy
    has = ranked == truth_idx[:, None]
    if c > k:  # a miss that holds the truth by chance gets the class just past the run instead
        miss = np.flatnonzero(~hit & has.any(axis=1))
        ranked[miss, has[miss].argmax(axis=1)] = (start[miss] + k) % c
        plant = np.flatnonzero(hit & ~has.any(axis=1))
        slot = np.minimum(rng.geometric(0.5, n) - 1, k - 1)
        ranked[plant, slot[plant]] = truth_idx[plant]
    names = classes[ranked]
    if path is not None:
        ranked_csv.write_ranked_csv(path, list(sample_ids), names.tolist())
    return pd.DataFrame({"sample_id": list(sample_ids), **dict(zip(ranked_csv.header(k)[1:], names.T))})
