"""A tiny fake MineralImage5k release in the real layout, written at test time.

``build_release(root)`` writes ``data/<collection>/<id>/FMM_<id>.JPG`` photos (a few
dozen 48x32 JPEGs), ``minerals_full.csv`` with the 15 documented columns (Russian
names included), the three split CSVs, ``minerals_size.csv`` and ``segm/img`` +
``segm/mask``; with ``archives=True`` the photos go into ``mineral_images.zip`` and the
masks into ``segm.tar`` instead. Some rows have no photo, as in the real release.
The returned ``FakeRelease`` says what a correct adapter must find.
"""

from __future__ import annotations

import csv
import io
import json
import tarfile
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

FULL_HEADER = ["id", "path", "height", "width", "ru_name", "ru_species", "ru_variety", "ru_satellites",
               "en_species", "en_name", "en_variety", "en_satellites", "en_description", "text_boxes",
               "mineral_boxes"]
W, H = 48, 32

# (English name as the CSV writes it, Russian name, how many samples)
SPECIES = [
    ("Quartz", "Кварц", 6),
    ("Calcite", "Кальцит", 6),
    ("Pyrite", "Пирит", 5),
    ("Fluorite", "Флюорит", 5),
    ("Realgar", "Реальгар", 4),
    ("Beryl", "Берилл", 3),
    (" Native  Copper ", "Медь самородная", 3),
]
SUBSETS = {"fewshot_10": ("quartz", "calcite"), "fewshot_98": ("quartz", "calcite", "pyrite"),
           "fewshot_360": ("quartz", "calcite", "pyrite", "fluorite")}
SPLIT_FILES = {"fewshot_10": "minerals_10.csv", "fewshot_98": "minerals_98.csv", "fewshot_360": "minerals_360.csv"}
COLLECTIONS = ["1_syst", "2_mest", "3_op", "10_meteor"]
MINERAL_BOXES = [{"label": "a stone", "confidence": 0.31, "box": [0.1, 0.1, 0.5, 0.5]},
                 {"label": "a mineral", "confidence": 0.82, "box": [0.25, 0.25, 0.75, 0.75]}]
TEXT_BOXES = [[[0.0, 0.875], [0.5, 1.0]]]


@dataclass
class FakeRelease:
    root: Path
    rows: list[dict]
    missing: set[str]                      # sample ids whose photo is not in the release
    missing_by_collection: dict[str, int]  # of rows left out (missing and not recovered by segm)
    subsets: dict[str, set[str]]           # split column -> sample ids it lists
    sizes: dict[str, float]                # sample id -> size in cm (imaged samples only)
    segm: dict[str, str] = field(default_factory=dict)  # sample id -> how its mask relates
    rotated: str = ""                      # the sample whose JPEG carries EXIF orientation 6


def _jpeg(seed: int, size=(W, H), orientation: int | None = None) -> bytes:
    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    buf = io.BytesIO()
    im = Image.fromarray(arr)
    if orientation:
        exif = Image.Exif()
        exif[0x0112] = orientation
        im.save(buf, format="JPEG", quality=80, exif=exif)
    else:
        im.save(buf, format="JPEG", quality=80)
    return buf.getvalue()


def _mask(size, colour: tuple[int, int, int] | None = None) -> bytes:
    """The centre half of the frame, white on black (or ``colour`` on black, RGB; (0, 0, 0): empty)."""
    arr = np.zeros((size[1], size[0], 3), dtype=np.uint8)
    arr[size[1] // 4: 3 * size[1] // 4, size[0] // 4: 3 * size[0] // 4] = colour or (255, 255, 255)
    buf = io.BytesIO()
    Image.fromarray(arr[..., 0] if colour is None else arr).save(buf, format="PNG")
    return buf.getvalue()


def write_csv(path: Path, header: list[str] | None, rows: list[list[str]]) -> None:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    if header:
        writer.writerow(header)
    writer.writerows(rows)
    path.write_text(buf.getvalue(), encoding="utf-8")


def build_release(root: Path, *, archives: bool = False, header: bool = True,
                  mask_colour: tuple[int, int, int] | None = None) -> FakeRelease:
    """Write the fake release into ``root`` (created); see the module docstring.
    ``mask_colour``: draw the masks in this RGB colour instead of white ((0, 0, 0): empty)."""
    root.mkdir(parents=True, exist_ok=True)
    rows, files = [], {}
    n = 0
    for en, ru, count in SPECIES:
        for k in range(count):
            coll = COLLECTIONS[n % len(COLLECTIONS)]
            sid = f"{coll.split('_')[0]}_{27300 + n}"
            path = f"data/{coll}/{sid}/FMM_{sid}.JPG"
            rows.append({
                "id": sid, "path": path, "height": "4000", "width": "6000", "ru_name": ru,
                "ru_species": ru.lower(), "ru_variety": "аметист" if en == "Quartz" and k == 0 else "",
                "ru_satellites": "пирит, кальцит" if k % 2 else "", "en_species": "", "en_name": en,
                "en_variety": "", "en_satellites": "pyrite, calcite" if k % 2 else "",
                "en_description": f"{en.strip()} crystals, specimen {k}, on matrix",
                "text_boxes": json.dumps(TEXT_BOXES), "mineral_boxes": json.dumps(MINERAL_BOXES),
                "collection": coll,
            })
            n += 1
    # Rows without a photo in the release: two of them get one back from segm/img.
    missing = {rows[i]["id"] for i in (3, 10, 17, 27, 30)}
    recovered = rows[30]["id"]
    rotated = rows[1]["id"]
    for i, r in enumerate(rows):
        if r["id"] not in missing:
            files[r["path"]] = _jpeg(i, orientation=6 if r["id"] == rotated else None)
    missing_by_collection = Counter(r["collection"] for r in rows if r["id"] in missing and r["id"] != recovered)

    # Segmentation: same size as the photo; photo missing but segm/img has it; twice the size.
    segm_files = {}
    same, double = rows[0]["id"], rows[7]["id"]
    segm_files[f"img/FMM_{same}.jpg"] = files[rows[0]["path"]]
    segm_files[f"mask/FMM_{same}.png"] = _mask((W, H), mask_colour)
    segm_files[f"img/FMM_{recovered}.jpg"] = _jpeg(999, size=(40, 40))
    segm_files[f"mask/FMM_{recovered}.png"] = _mask((40, 40), mask_colour)
    segm_files[f"mask/{double}_mask.png"] = _mask((2 * W, 2 * H), mask_colour)
    segm_files["mask/FMM_99_1.png"] = _mask((W, H))  # matches no sample

    full_rows = [[r[c] for c in FULL_HEADER] for r in rows]
    write_csv(root / "minerals_full.csv", FULL_HEADER if header else None, full_rows)
    subsets = {}
    for col, classes in SUBSETS.items():
        chosen = [r for r in rows if " ".join(r["en_name"].lower().split()) in classes]
        subsets[col] = {r["id"] for r in chosen}
        write_csv(root / SPLIT_FILES[col], ["id", "path", "en_name"],
                  [[r["id"], r["path"], r["en_name"]] for r in chosen])
    sizes = {}
    size_rows = []
    for i, r in enumerate(rows[::3]):
        cm = 1.5 + i
        size_rows.append([f"mineral_images/{r['path']}", r["ru_species"], f"{cm:.1f}".replace(".", ",")])
        if r["id"] not in missing or r["id"] == recovered:
            sizes[r["id"]] = cm
    write_csv(root / "minerals_size.csv", ["path_final", "MVID", "SIZESM"], size_rows)

    if archives:
        with zipfile.ZipFile(root / "mineral_images.zip", "w", zipfile.ZIP_DEFLATED) as zf:
            for p, data in files.items():
                zf.writestr(p, data)
        with tarfile.open(root / "segm.tar", "w") as tf:
            for p, data in segm_files.items():
                info = tarfile.TarInfo(p)
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
    else:
        for p, data in {**files, **{f"segm/{k}": v for k, v in segm_files.items()}}.items():
            (root / p).parent.mkdir(parents=True, exist_ok=True)
            (root / p).write_bytes(data)
    return FakeRelease(root=root, rows=rows, missing=missing, missing_by_collection=dict(missing_by_collection),
                       subsets=subsets, sizes=sizes,
                       segm={same: "same_size", recovered: "image_from_segm", double: "resized"},
                       rotated=rotated)
