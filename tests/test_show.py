"""``minbench data show``: the contact sheet, on synth and on a release-like manifest."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from PIL import Image

from minbench.cli import main
from minbench.data import manifest
from minbench.data.show import contact_sheet, select_rows
from minbench.errors import UserError


def test_contact_sheet_is_a_non_blank_png(tiny_dataset, tmp_path):
    out = contact_sheet(tiny_dataset, out=tmp_path / "sheet.png", n=8)
    with Image.open(out) as im:
        assert im.format == "PNG" and im.width > 500 and im.height > 200
        arr = np.asarray(im.convert("RGB"), dtype=np.float32)
    assert arr.std() > 20
    # The mask outline (magenta) shows up somewhere.
    magenta = (arr[..., 0] > 150) & (arr[..., 1] < 110) & (arr[..., 2] > 130)
    assert magenta.sum() > 50


@pytest.mark.parametrize("task, column", [("size", "size"), ("segmentation", "segmentation"),
                                          ("fewshot-98", "fewshot_98")])
def test_task_picks_its_test_rows(tiny_dataset, task, column):
    df = manifest.read_manifest(tiny_dataset)
    rows = select_rows(df, task, 100)
    expected = df[df[column] == (True if df[column].dtype == bool else "test")]
    assert list(rows["sample_id"]) == list(expected["sample_id"])
    assert len(select_rows(df, task, 3)) == 3


def test_works_on_a_manifest_without_masks_or_boxes(tiny_dataset, tmp_path):
    df = manifest.read_manifest(tiny_dataset).head(4).copy()
    folder = tmp_path / "release"
    (folder / "images").mkdir(parents=True)
    for p in df["image_path"][:3]:
        shutil.copy(tiny_dataset / p, folder / p)   # the fourth image is missing on purpose
    df["mask_path"] = ""
    df[["bbox", "cube_bbox", "text_boxes"]] = ""
    df["segmentation"] = False
    df["source"] = "mineralimage5k"
    df.loc[df.index[0], "species"] = "кварц"
    manifest.write_dataset(folder, df, name="mineralimage5k", version="1", source="mineralimage5k")
    out = contact_sheet(folder, out=tmp_path / "sheet.png")
    with Image.open(out) as im:
        assert im.size[0] > 0 and np.asarray(im).std() > 10


def test_bad_arguments_are_user_errors(tiny_dataset, tmp_path):
    with pytest.raises(UserError, match="--n 0"):
        contact_sheet(tiny_dataset, out=tmp_path / "s.png", n=0)
    with pytest.raises(UserError, match="fewshot-10"):
        contact_sheet(tiny_dataset, out=tmp_path / "s.png", task="fewshot-11")
    with pytest.raises(UserError, match="PNG"):
        contact_sheet(tiny_dataset, out=tmp_path / "s.jpg")
    assert not list(tmp_path.iterdir())


def test_cli_show(tiny_dataset, tmp_path, capsys):
    out = tmp_path / "sheet.png"
    assert main(["data", "show", "--data", str(tiny_dataset), "--out", str(out), "--n", "4"]) == 0
    assert out.is_file() and "wrote" in capsys.readouterr().out


def test_masks_are_outlines_that_leave_the_photo_as_it_is(tiny_dataset):
    from minbench.data.show import _tile, mask_outline

    square = Image.new("L", (40, 40), 0)
    square.paste(255, (10, 10, 30, 30))
    band = np.asarray(mask_outline(square, width=2)) > 0
    assert band[10, 15] and band[11, 15] and not band[12, 15] and not band[20, 20] and not band[5, 5]

    df = manifest.read_manifest(tiny_dataset)
    row = df[df["mask_path"] != ""].iloc[0].copy()
    row[["bbox", "cube_bbox", "text_boxes"]] = ""
    drawn = np.asarray(_tile(tiny_dataset, row, show_size=False), dtype=np.int16)
    bare_row = row.copy()
    bare_row["mask_path"] = ""
    bare = np.asarray(_tile(tiny_dataset, bare_row, show_size=False), dtype=np.int16)
    changed = np.abs(drawn - bare).sum(-1) > 0
    assert changed.any()
    # Only a thin band changes: the inside of the mask keeps the photo's own colours.
    assert changed.mean() < 0.05
