"""The decoding policy: every odd photo becomes RGB 8-bit and upright, or a named skip."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from minbench.data.decode import BadImage, load_rgb, resize_mask, resize_square, to_rgb8
from minbench.data.masks import read_truth_mask


def _jpeg(path, arr, **kw):
    Image.fromarray(arr).save(path, format="JPEG", quality=95, **kw)
    return path


def test_rgb_jpeg_keeps_size_and_colour(tmp_path):
    arr = np.zeros((48, 64, 3), np.uint8)
    arr[..., 0] = 200
    out, hw = load_rgb(_jpeg(tmp_path / "a.jpg", arr))
    assert out.shape == (48, 64, 3) and out.dtype == np.uint8 and hw == (48, 64)
    assert abs(int(out[..., 0].mean()) - 200) <= 3 and out[..., 2].mean() < 5


def test_grayscale_becomes_three_equal_channels(tmp_path):
    path = tmp_path / "g.jpg"
    Image.fromarray(np.full((20, 30), 90, np.uint8), mode="L").save(path)
    out, _ = load_rgb(path)
    assert out.shape == (20, 30, 3)
    assert (out[..., 0] == out[..., 1]).all() and (out[..., 1] == out[..., 2]).all()


def test_cmyk_jpeg_becomes_rgb(tmp_path):
    path = tmp_path / "c.jpg"
    Image.new("CMYK", (32, 16), (0, 255, 255, 0)).save(path, quality=95)  # pure red in CMYK
    out, _ = load_rgb(path)
    r, g, b = out.reshape(-1, 3).mean(0)
    assert r > 200 and g < 60 and b < 60


def test_sixteen_bit_png_is_scaled_to_eight_bits(tmp_path):
    path = tmp_path / "d.png"
    arr = np.array([[0, 32896, 65535]], np.uint16).repeat(4, 0)
    Image.fromarray(arr).save(path)
    assert Image.open(path).mode.startswith("I")
    out, _ = load_rgb(path)
    assert out.dtype == np.uint8
    assert out[0, :, 0].tolist() == [0, 128, 255]


def test_transparency_is_composited_on_white(tmp_path):
    path = tmp_path / "t.png"
    arr = np.zeros((8, 8, 4), np.uint8)
    arr[:, :4] = (255, 0, 0, 255)  # opaque red left, fully transparent black right
    Image.fromarray(arr, mode="RGBA").save(path)
    out, _ = load_rgb(path)
    assert tuple(out[0, 0]) == (255, 0, 0) and tuple(out[0, 7]) == (255, 255, 255)


def test_exif_rotation_is_applied(tmp_path):
    arr = np.zeros((20, 40, 3), np.uint8)
    arr[:, :20] = (255, 0, 0)   # left half red
    arr[:, 20:] = (0, 0, 255)   # right half blue
    exif = Image.Exif()
    exif[0x0112] = 6            # display needs a 90 degree clockwise turn
    path = tmp_path / "r.jpg"
    Image.fromarray(arr).save(path, quality=95, exif=exif.tobytes())
    out, hw = load_rgb(path)
    assert out.shape == (40, 20, 3) and hw == (40, 20)
    assert out[5, 10, 0] > 200 and out[35, 10, 2] > 200   # red now on top, blue at the bottom


def test_exif_rotation_with_draft_reports_the_full_upright_size(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 8
    path = tmp_path / "big.jpg"
    Image.fromarray(np.full((768, 1024, 3), 128, np.uint8)).save(path, quality=80, exif=exif.tobytes())
    out, hw = load_rgb(path, draft=224)
    assert hw == (1024, 768)
    assert out.shape[0] > out.shape[1] >= 224 and out.shape[0] < 1024  # decoded at a reduced scale


def test_draft_of_a_width_and_height_is_in_the_upright_frame(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6            # stored 1600 x 400, shown 400 x 1600
    path = tmp_path / "tall.jpg"
    Image.fromarray(np.full((400, 1600, 3), 128, np.uint8)).save(path, quality=80, exif=exif.tobytes())
    out, hw = load_rgb(path, draft=(100, 400))   # at least 100 wide and 400 tall, upright
    assert hw == (1600, 400)
    assert out.shape == (400, 100, 3)             # 1/4 scale: the largest that keeps both sides


def test_truncated_jpeg_is_skipped_with_a_reason(tmp_path):
    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(buf, format="JPEG")
    path = tmp_path / "cut.jpg"
    path.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    with pytest.raises(BadImage, match="truncated"):
        load_rgb(path)
    with pytest.raises(BadImage, match="truncated"):
        load_rgb(path, draft=16)  # a reduced-scale decode still reads to the end


def test_garbage_and_missing_files_are_skipped(tmp_path):
    path = tmp_path / "x.jpg"
    path.write_bytes(b"not an image at all")
    with pytest.raises(BadImage, match="not a readable image"):
        load_rgb(path)
    with pytest.raises(BadImage, match="not found"):
        load_rgb(tmp_path / "nowhere.jpg")


def test_decompression_bomb_is_skipped_without_decoding(tmp_path, monkeypatch):
    path = _jpeg(tmp_path / "b.jpg", np.zeros((100, 100, 3), np.uint8))
    with pytest.raises(BadImage, match="decompression bomb"):
        load_rgb(path, max_pixels=5000)
    # PIL's own guard (both its warning band and its error band) is honoured too
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 6000)
    with pytest.raises(BadImage, match="decompression bomb"):
        load_rgb(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 4000)
    with pytest.raises(BadImage, match="decompression bomb"):
        load_rgb(path)


def test_float_image_has_no_eight_bit_range():
    with pytest.raises(BadImage, match="floating-point"):
        to_rgb8(Image.new("F", (4, 4), 0.5))


def test_mask_is_binary_and_resizes_sharply(tmp_path):
    m = np.zeros((40, 60), np.uint8)
    m[10:30, 15:45] = 255
    path = tmp_path / "m.png"
    Image.fromarray(m).save(path)
    mask = read_truth_mask(path).astype(np.uint8)
    assert set(np.unique(mask)) == {0, 1} and mask.sum() == 20 * 30
    small = resize_mask(mask, 20)
    assert small.shape == (20, 20) and set(np.unique(small)) == {0, 1}
    assert abs(small.mean() - mask.mean()) < 0.05


def test_resize_square_is_whole_image():
    arr = np.zeros((30, 60, 3), np.uint8)
    arr[:, 30:] = 255
    out = resize_square(arr, 16)
    assert out.shape == (16, 16, 3)
    assert out[:, :7].max() < 10 and out[:, 9:].min() > 245  # left/right halves kept, no crop
