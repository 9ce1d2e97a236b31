"""Reading mask images: the one owner of what a mask file means.

Two rules, one module; every reader of masks (the data module and its cache, ``data
check``, ``data prepare``, the scorer, the segmentation pipeline) calls one of them.

**Truth rule** (``read_truth_mask``): ground-truth masks, hand-drawn (the release's
``segm/mask``) or prepared/generated (``masks/<sample_id>.png``).

- EXIF orientation is applied (the mask is in the frame a person sees, as its photo is).
- Colour is handled: a pixel's value is the largest of its channels, each normalised to
  the mode's range (``1``: 0/1; ``L``, ``RGB``, palette: /255; 16-bit: /65535; an ``I``
  image whose values fit in 0..255 is 8-bit); an alpha channel multiplies it (a
  transparent pixel is background). Mineral is a value above half the range. So white,
  pure red, green or blue, a palette or 16-bit mask all read the same, and JPEG noise
  (a black background at 10, an edge at 240) falls on the right side.
- Other modes (``F``, ``CMYK``, ``YCbCr``, ...) are refused as unusual.

**Submission rule** (``decode_submission_mask``): a submitted (or a run's own) PNG,
single-channel modes only (``MASK_MODES``), nonzero = mineral, exactly the image's size.

Every refusal is a ``BadMask``: a ``UserError`` (the scorer and the CLI print its one
line) and a ``BadImage`` (the cache builder skips the row with that line as reason), so
the data module, ``data check`` and the scorer give the same verdict on the same file.
``BadMask.kind`` says which check failed: ``missing``, ``unreadable``, ``size``, ``mode``.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from minbench.data.decode import BadImage, _open, _orientation
from minbench.errors import UserError

#: submission masks: one channel, nonzero = mineral
MASK_MODES = ("1", "L", "I", "I;16", "I;16B", "I;16L")
#: ground-truth masks: any of these, read by the truth rule
TRUTH_MODES = ("1", "L", "LA", "La", "P", "PA", "RGB", "RGBA", "RGBa", "RGBX", "I", "I;16", "I;16B", "I;16L")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_ALPHA = ("LA", "La", "PA", "RGBA", "RGBa")


class BadMask(BadImage, UserError):
    """A mask refused by its rule; ``str(exc)`` is the one-line verdict, ``kind`` the check."""

    def __init__(self, message: str, kind: str):
        super().__init__(message)
        self.kind = kind


def _of(sample_id: str | None) -> str:
    return f" of {sample_id!r}" if sample_id is not None else ""


def _size_verdict(path, got: tuple[int, int], size: tuple[int, int]) -> BadMask:
    return BadMask(f"{path}: true mask is {got[0]}x{got[1]} but the manifest says the image is "
                   f"{size[0]}x{size[1]}", "size")


def _mode_verdict(path, mode: str) -> BadMask:
    return BadMask(f"{path}: true mask has mode {mode}; a mask is greyscale, colour (RGB/RGBA), palette "
                   "or 16-bit, bright = mineral", "mode")


def _open_truth(path: Path, sample_id: str | None, max_pixels: int | None) -> Image.Image:
    if not path.is_file():
        raise BadMask(f"{path}: true mask{_of(sample_id)} is missing from the dataset", "missing")
    try:
        return _open(path, max_pixels)
    except BadImage as exc:
        raise BadMask(f"{path}: true mask{_of(sample_id)} is unreadable ({exc})", "unreadable") from None


def _displayed_size(img: Image.Image) -> tuple[int, int]:
    w, h = img.size
    return (h, w) if _orientation(img) in (5, 6, 7, 8) else (w, h)


def _checked_truth(path: Path, size, sample_id, max_pixels) -> tuple[Image.Image, tuple[int, int]]:
    """The opened truth mask and its displayed (W, H), after the checks that need no
    decoding (exists, readable header, mode, size). Raises ``BadMask``."""
    img = _open_truth(path, sample_id, max_pixels)
    if img.mode not in TRUTH_MODES:
        img.close()
        raise _mode_verdict(path, img.mode)
    shown = _displayed_size(img)
    if size is not None and tuple(shown) != tuple(size):
        img.close()
        raise _size_verdict(path, shown, size)
    return img, shown


def check_truth_mask_header(path: str | Path, *, size: tuple[int, int] | None = None,
                            sample_id: str | None = None) -> tuple[int, int]:
    """The truth rule's checks that need no decoding (exists, readable header, mode, size);
    returns the displayed (W, H). Raises ``BadMask``."""
    img, shown = _checked_truth(Path(path), size, sample_id, None)
    img.close()
    return shown


def truth_values(img: Image.Image) -> np.ndarray:
    """The truth rule on a decoded, upright PIL image: bool HxW, True = mineral."""
    mode = img.mode
    if mode not in TRUTH_MODES:
        raise ValueError(mode)
    if mode == "1":
        return np.asarray(img, dtype=bool).copy()
    if mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    elif mode == "PA":
        img = img.convert("RGBA")
    mode = img.mode
    if mode.startswith("I"):
        arr = np.asarray(img).astype(np.int64)
        full = 255 if mode == "I" and arr.size and arr.min() >= 0 and arr.max() <= 255 else 65535
        return 2 * arr > full
    arr = np.asarray(img)
    if arr.ndim == 2:                                    # L
        return arr > 127
    colour = arr[..., :3].max(axis=2) if mode not in ("LA", "La") else arr[..., 0]
    if mode in _ALPHA:
        # value x alpha above half: 2 * v * a > 255 * 255 (a premultiplied image is already v x a)
        if mode in ("La", "RGBa"):
            return colour > 127
        return 2 * colour.astype(np.int32) * arr[..., -1] > 255 * 255
    return colour > 127


def read_truth_mask(path: str | Path, *, size: tuple[int, int] | None = None, sample_id: str | None = None,
                    max_pixels: int | None = None) -> np.ndarray:
    """A ground-truth mask by the truth rule (module docstring): bool HxW, upright.

    ``size``: the image's (W, H) from the manifest; a mask of another displayed size is
    refused. ``sample_id`` names the row in the verdicts. Raises ``BadMask``.
    """
    path = Path(path)
    img, _ = _checked_truth(path, size, sample_id, max_pixels)
    with img:
        try:
            img.load()
            upright = ImageOps.exif_transpose(img) if _orientation(img) != 1 else img
            return truth_values(upright)
        except (OSError, SyntaxError, ValueError, MemoryError, EOFError) as exc:
            raise BadMask(f"{path}: true mask{_of(sample_id)} is unreadable (corrupt or truncated: "
                          f"{type(exc).__name__}: {exc})", "unreadable") from None


def decode_submission_mask(data: bytes, name: str, width: int, height: int) -> np.ndarray:
    """PNG bytes of a submitted mask to bool HxW (nonzero = mineral), refusing other
    formats, modes and sizes. Raises ``BadMask``."""
    if not data.startswith(PNG_SIGNATURE):
        try:
            fmt = Image.open(io.BytesIO(data)).format
        except (UnidentifiedImageError, OSError, ValueError):
            fmt = None
        raise BadMask(f"{name}: not a PNG file" + (f" (it is {fmt})" if fmt else ""), "unreadable")
    try:
        im = Image.open(io.BytesIO(data))
        if im.size != (width, height):
            raise BadMask(f"{name}: mask is {im.size[0]}x{im.size[1]} but the image is {width}x{height}", "size")
        if im.mode not in MASK_MODES:
            raise BadMask(f"{name}: mode {im.mode}; a mask has one channel (mode L or 1), nonzero = mineral", "mode")
        arr = np.asarray(im)
    except BadMask:
        raise
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise BadMask(f"{name}: damaged PNG ({exc})", "unreadable") from None
    return arr != 0


def read_submission_mask(path: str | Path, *, size: tuple[int, int] | None = None) -> np.ndarray:
    """A submitted (or a run's own) mask file by the submission rule; ``size`` (W, H)
    checked when given. Raises ``BadMask``."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise BadMask(f"{path}: mask file not found", "missing") from None
    except OSError as exc:
        raise BadMask(f"{path}: not a readable mask file ({exc})", "unreadable") from None
    if size is None:
        try:
            size = Image.open(io.BytesIO(data)).size
        except (UnidentifiedImageError, OSError, ValueError):
            size = (0, 0)  # decode_submission_mask names what is wrong
    return decode_submission_mask(data, str(path), int(size[0]), int(size[1]))


def mask_png_bytes(mask: np.ndarray) -> bytes:
    """A bool (or 0/1) mask as 8-bit PNG bytes, 255 = mineral (the submission format)."""
    buf = io.BytesIO()
    Image.fromarray(np.where(np.asarray(mask) != 0, 255, 0).astype(np.uint8), mode="L").save(buf, format="PNG")
    return buf.getvalue()
