"""A dataset's two fingerprints: the truth one (the boards' key) is the same wherever the same
dataset is made, the image one moves with every pixel; both of ``tiny`` are pinned here, so a
change that moves them fails CI on any machine."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from minbench.data import manifest

#: ``minbench data generate --size tiny --seed 0``: what the scores of every board are computed
#: against (ids, splits, labels, sizes, scored masks, class texts). A change to the generator
#: that moves it is a new dataset: raise GENERATOR_VERSION and re-publish the boards.
TINY_TRUTH_FINGERPRINT = "sha256:9d039937e61f6a1786dc0735084a465f"
#: the manifest's (and so the rendering's) fingerprint of the same dataset on the machine that
#: pinned it; other versions of OpenCV, NumPy or libjpeg may draw other pixels (DESIGN.md)
TINY_IMAGE_FINGERPRINT = "sha256:c8432dd8bbc10735abb5dd1d554947c4"


def test_tiny_truth_fingerprint_is_the_pinned_one(tiny_dataset):
    info = manifest.read_info(tiny_dataset)
    assert info.truth_fingerprint == TINY_TRUTH_FINGERPRINT
    assert info.identity() == {"name": "synth", "version": info.version, "source": "synth",
                               "fingerprint": TINY_TRUTH_FINGERPRINT, "image_fingerprint": info.fingerprint}


def test_tiny_image_fingerprint_is_the_pinned_one(tiny_dataset):
    assert manifest.read_info(tiny_dataset).fingerprint == TINY_IMAGE_FINGERPRINT


@pytest.fixture()
def copy(tiny_dataset, tmp_path):
    out = tmp_path / "copy"
    shutil.copytree(tiny_dataset, out)
    return out


def _rewrite(folder, change) -> manifest.DatasetInfo:
    """Apply ``change`` to the manifest and rewrite the dataset as ``data prepare`` would."""
    info = manifest.read_info(folder)
    df = manifest.read_manifest(folder)
    change(df)
    extra = {k: v for k, v in info.extra.items() if k != manifest.TRUTH_FINGERPRINT_KEY}
    return manifest.write_dataset(folder, df, name=info.name, version=info.version, source=info.source, extra=extra)


def test_rendering_that_moves_pixels_and_geometry_leaves_the_truth(copy):
    def jitter(df):  # what another OpenCV might do: a scale and a box in their last digits
        df["px_per_cm"] = df["px_per_cm"] * (1 + 1e-6)
        df["bbox"] = df["bbox"].str.replace(".0", ".1", regex=False)

    new = _rewrite(copy, jitter)
    assert new.fingerprint != TINY_IMAGE_FINGERPRINT
    assert new.truth_fingerprint == TINY_TRUTH_FINGERPRINT


@pytest.mark.parametrize("what", ["label", "split", "size", "mask", "class text"])
def test_any_change_of_truth_moves_it(copy, what):
    df0 = manifest.read_manifest(copy)
    seg = df0.index[df0["segmentation"]][0]
    if what == "mask":
        path = copy / df0.loc[seg, "mask_path"]
        arr = np.array(Image.open(path))
        arr[0, 0] = 255 - arr[0, 0]
        Image.fromarray(arr).save(path)
        new = _rewrite(copy, lambda df: None)
    elif what == "class text":
        info = manifest.read_info(copy)
        texts = dict(info.class_texts)
        label = next(iter(texts))
        texts[label] += " Changed."
        raw = json.loads((copy / manifest.DATASET_FILE).read_text())
        raw[manifest.CLASS_TEXTS_KEY] = texts
        (copy / manifest.DATASET_FILE).write_text(json.dumps(raw))
        new = _rewrite(copy, lambda df: None)
    else:
        column, value = {"label": ("species", "not-a-species"), "split": ("fewshot_10", ""),
                         "size": ("size_cm", 99.9)}[what]
        row = df0.index[df0["size"]][0] if what == "size" else df0.index[df0["fewshot_10"] != ""][0]

        def change(df: pd.DataFrame):
            df.loc[row, column] = value

        new = _rewrite(copy, change)
    assert new.truth_fingerprint != TINY_TRUTH_FINGERPRINT


def test_a_dataset_prepared_before_the_truth_fingerprint_gets_it_from_its_folder(copy):
    raw = json.loads((copy / manifest.DATASET_FILE).read_text())
    raw.pop(manifest.TRUTH_FINGERPRINT_KEY)
    (copy / manifest.DATASET_FILE).write_text(json.dumps(raw))
    assert manifest.read_info(copy).truth_fingerprint == TINY_TRUTH_FINGERPRINT
