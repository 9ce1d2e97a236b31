"""``minbench data show``: a contact sheet of samples with their truth drawn on top.

Each tile shows the photo upright (read by ``data.decode.load_rgb``, EXIF orientation
applied, the frame of the manifest's sizes, boxes and masks), the mask's outline (magenta),
the specimen box (green), the reference-cube box (blue), the label's text boxes (red), and
under it the class (a species or a named variety), the size for rows of the size set (on
the embedded data, the specimen's longest 3-D dimension) and, for an embedded photo without
a reference cube, "no cube". Nothing is filled: every mark is an outline, so the photo's
colours stay the specimen's own. Works on any manifest: what a row lacks (mask, boxes) is
simply not drawn."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from minbench.data.masks import BadMask, read_truth_mask
from minbench.errors import UserError

TILE_W, TILE_H, CAPTION_H = 288, 216, 40
MASK_OUTLINE = (255, 0, 200)
OUTLINE_PX = 2
COLOURS = {"bbox": (40, 220, 60), "cube_bbox": (40, 120, 255), "text_boxes": (255, 60, 40)}


def select_rows(df, task: str | None, n: int):
    """The rows to show: the task's test rows (all rows without a task), ``n`` spread evenly."""
    if n < 1:
        raise UserError(f"--n {n}: must be at least 1")
    if task is not None:
        from minbench.cards import get_card

        df = get_card(task).rows(df, "test", where=f"--task {task}: the manifest")
    if len(df) > n:
        df = df.iloc[np.unique(np.linspace(0, len(df) - 1, n).round().astype(int))]
    return df


def _boxes(text: str) -> list[tuple[float, float, float, float]]:
    """Boxes from a manifest cell: one box, a list of boxes, or nothing (``data.boxes``)."""
    from minbench.data.boxes import parse_box_list

    return parse_box_list(text)


def mask_outline(mask, width: int = OUTLINE_PX):
    """The inner band (``width`` px) of a mask's edge as an ``L`` image (255 on the band, 0
    elsewhere): what is drawn, so the pixels inside the mask keep the photo's colours."""
    from PIL import ImageChops, ImageFilter

    binary = mask.convert("L").point(lambda v: 255 if v else 0)
    return ImageChops.subtract(binary, binary.filter(ImageFilter.MinFilter(2 * width + 1)))


def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has one fixed bitmap font
        return ImageFont.load_default()


def _tile(folder: Path, row, show_size: bool):
    from PIL import Image, ImageDraw

    from minbench.data.decode import BadImage, load_rgb

    tile = Image.new("RGB", (TILE_W, TILE_H + CAPTION_H), (24, 24, 24))
    draw = ImageDraw.Draw(tile)
    try:  # upright (EXIF applied), as the masks and boxes drawn on it; JPEG decoded at a reduced scale
        rgb, (full_h, full_w) = load_rgb(folder / row["image_path"], draft=(TILE_W, TILE_H))
    except BadImage:
        draw.text((8, TILE_H // 2), "image missing or unreadable", fill=(230, 80, 80), font=_font(13))
    else:
        orig_w = int(row["width"]) or full_w
        orig_h = int(row["height"]) or full_h
        scale = min(TILE_W / orig_w, TILE_H / orig_h)
        photo = Image.fromarray(rgb).resize((max(1, round(orig_w * scale)), max(1, round(orig_h * scale))))
        ox, oy = (TILE_W - photo.width) // 2, (TILE_H - photo.height) // 2
        mask_path = folder / row["mask_path"] if row["mask_path"] else None
        if mask_path is not None and mask_path.is_file():
            try:  # the truth rule (data.masks), as the scorer reads it; drawn as an outline
                m = Image.fromarray(read_truth_mask(mask_path).astype(np.uint8) * 255).resize(photo.size)
                photo.paste(Image.new("RGB", photo.size, MASK_OUTLINE), (0, 0), mask_outline(m))
            except BadMask:
                pass
        tile.paste(photo, (ox, oy))
        for col, colour in COLOURS.items():
            for x1, y1, x2, y2 in _boxes(row[col]):
                draw.rectangle([ox + x1 * scale, oy + y1 * scale, ox + x2 * scale, oy + y2 * scale],
                               outline=colour, width=2 if col != "text_boxes" else 1)
    caption = str(row["species"])
    if show_size and np.isfinite(row["size_cm"]):
        caption += f"  |  {row['size_cm']:.1f} cm"
    font = _font(13)
    draw.text((6, TILE_H + 4), caption[:48], fill=(240, 240, 240), font=font)
    # An embedded photo without a cube says so: its size truth exists, a cube reader must abstain.
    note = "  |  no cube" if row.get("source") == "synth" and not str(row.get("cube_bbox") or "") else ""
    draw.text((6, TILE_H + 21), (str(row["sample_id"]) + note)[:48], fill=(150, 150, 150), font=font)
    return tile


def contact_sheet(data_dir: str | Path, *, out: str | Path, task: str | None = None, n: int = 24) -> Path:
    """Draw ``n`` samples of the dataset in ``data_dir`` (a task's test rows when ``task`` is given)
    into a PNG grid at ``out`` (written atomically); returns ``out``."""
    from PIL import Image

    from minbench.data.manifest import read_manifest
    from minbench.io import atomic_path

    out = Path(out)
    if out.suffix.lower() != ".png":
        raise UserError(f"--out {out}: the contact sheet is a PNG; name it *.png")
    folder = Path(data_dir)
    df = read_manifest(folder)
    rows = select_rows(df, task, n)
    # sizes are captioned on the size task's rows (the card says which), on its sheet or the whole dataset's
    size_rows = set()
    if task == "size" or task is None:
        from minbench.cards import cards_of_kind

        size_rows = {i for card in cards_of_kind("size")
                     for i in df.index[card.positions(df, "test", allow_empty=True)]}
    cols = min(len(rows), 6)
    nrows = math.ceil(len(rows) / cols)
    sheet = Image.new("RGB", (cols * TILE_W, nrows * (TILE_H + CAPTION_H)), (12, 12, 12))
    for i, (index, row) in enumerate(rows.iterrows()):
        tile = _tile(folder, row, show_size=index in size_rows)
        sheet.paste(tile, ((i % cols) * TILE_W, (i // cols) * (TILE_H + CAPTION_H)))
    with atomic_path(out) as tmp:
        sheet.save(tmp, format="PNG")
    return out
