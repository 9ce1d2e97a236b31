"""``minbench data show``: the contact sheet, on synth and on a release-like manifest."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from minbench.cards import get_card
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
    expected = expected.drop(get_card(task).rows(df, "validation").index)  # the scored rows: not the validation part
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


def _rotated_sample(folder, *, square=(8, 10, 24, 40), size=(64, 96)):
    """A one-row dataset: a JPEG stored on its side with EXIF orientation 6, upright ``size``
    (w, h) grey with a black ``square`` (x1, y1, x2, y2), its mask and box on that square."""
    w, h = size
    x1, y1, x2, y2 = square
    upright = np.full((h, w, 3), 170, np.uint8)
    upright[y1:y2, x1:x2] = 0
    mask = np.zeros((h, w), np.uint8)
    mask[y1:y2, x1:x2] = 255
    exif = Image.Exif()
    exif[0x0112] = 6   # the viewer turns the stored image 90 degrees clockwise
    (folder / "images").mkdir(parents=True)
    (folder / "masks").mkdir()
    stored = Image.fromarray(upright).transpose(Image.Transpose.ROTATE_90)   # what the camera wrote
    stored.save(folder / "images" / "r1.jpg", quality=95, exif=exif.tobytes())
    Image.fromarray(mask).save(folder / "masks" / "r1.png")
    row = manifest.empty_row()
    row.update(sample_id="r1", image_path="images/r1.jpg", width=w, height=h, species="quartz",
               segmentation=True, mask_path="masks/r1.png", bbox=manifest.format_box(list(square)),
               source="mineralimage5k")
    import pandas as pd

    manifest.write_dataset(folder, pd.DataFrame([row]), name="mineralimage5k", version="1", source="mineralimage5k")


def test_a_rotated_photo_is_drawn_upright_under_its_mask_and_box(tmp_path):
    from minbench.data.show import TILE_H, TILE_W

    folder = tmp_path / "release"
    _rotated_sample(folder)
    sheet = np.asarray(Image.open(contact_sheet(folder, out=tmp_path / "s.png")).convert("RGB"), dtype=np.int16)
    # the upright 64 x 96 photo fills the tile's height: 2.25 px per pixel, centred across
    scale = min(TILE_W / 64, TILE_H / 96)
    ox = (TILE_W - round(64 * scale)) // 2

    def tile_xy(x, y):
        return round(ox + x * scale), round(y * scale)

    magenta = (sheet[..., 0] > 180) & (sheet[..., 1] < 90) & (sheet[..., 2] > 140)
    ys, xs = np.nonzero(magenta[:TILE_H])
    (left, top), (right, bottom) = tile_xy(8, 10), tile_xy(24, 40)
    # the mask's outline runs along the square's edge ...
    assert abs(xs.min() - left) <= 2 and abs(xs.max() - (right - 1)) <= 2
    assert abs(ys.min() - top) <= 2 and abs(ys.max() - (bottom - 1)) <= 2
    # ... and the photo under it is the black square, upright (a sideways photo puts grey here)
    for x, y in ((12, 14), (20, 36), (16, 25), (12, 36)):
        tx, ty = tile_xy(x, y)
        assert sheet[ty, tx].max() < 60, (x, y, sheet[ty, tx])
    for x, y in ((40, 25), (16, 60), (50, 80), (4, 4)):
        tx, ty = tile_xy(x, y)
        assert sheet[ty, tx].min() > 130, (x, y, sheet[ty, tx])
    # the specimen box (green) is drawn on the same square
    green = (sheet[..., 1] > 180) & (sheet[..., 0] < 90) & (sheet[..., 2] < 110)
    gy, gx = np.nonzero(green[:TILE_H])
    assert abs(gx.min() - left) <= 2 and abs(gx.max() - right) <= 3 and abs(gy.min() - top) <= 2
