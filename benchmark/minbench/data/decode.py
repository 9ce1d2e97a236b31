"""Robust image decoding: every photo becomes RGB 8-bit, upright, or a named reason to skip it.

Policy (one place, used by the cache builder and the native-resolution path):

- EXIF orientation is applied (``ImageOps.exif_transpose``) so pixels and sizes are in the
  frame a person sees. Masks are read by ``data.masks`` (the same opening and orientation).
- Grayscale, palette, CMYK, YCbCr, LAB ... are converted to RGB. Transparency is composited
  onto white (museum backgrounds are light; the RGB under a transparent pixel is arbitrary).
- 16-bit integer images are scaled to 8 bits (``v * 255 / 65535``); an ``I`` (32-bit) image
  whose values fit in 0..255 is taken as 8-bit, else as 16-bit. Floating-point images have
  no defined 8-bit range and are skipped.
- Corrupt or truncated files, files PIL cannot identify, and images with more pixels than
  ``max_pixels`` (default: PIL's ``Image.MAX_IMAGE_PIXELS``, the decompression-bomb guard) are
  skipped: :class:`BadImage` names the reason, the caller drops the row (with its label) and
  reports the file. Nothing here changes PIL's global settings (``LOAD_TRUNCATED_IMAGES``
  stays off: a half-grey photo is a wrong sample, not a usable one).

JPEGs are decoded with ``draft`` when only a small size is needed: libjpeg's DCT scaling
decodes at 1/2, 1/4 or 1/8 size several times faster, and still reads every scan, so a
truncated file is still caught.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

# Bump when the decoding or resizing policy changes: it is part of the image cache's key.
# 2: masks read by ``data.masks``' truth rule (colour, alpha, exact size).
DECODE_VERSION = 2

_EXIF_ORIENTATION = 0x0112
_SWAPS_AXES = {5, 6, 7, 8}


class BadImage(Exception):
    """An image the policy skips; ``str(exc)`` is the reason (one line)."""


def _pixel_limit(max_pixels: int | None) -> int | None:
    return Image.MAX_IMAGE_PIXELS if max_pixels is None else max_pixels


def _orientation(img: Image.Image) -> int:
    try:
        return int(img.getexif().get(_EXIF_ORIENTATION, 1) or 1)
    except Exception:  # a damaged EXIF block must not cost the photo; keep it unrotated
        return 1


def _open(path: str | Path, max_pixels: int | None) -> Image.Image:
    limit = _pixel_limit(max_pixels)
    try:
        with warnings.catch_warnings():
            # PIL only warns between 1x and 2x its limit; for a dataset that is a bomb too.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(path)
    except FileNotFoundError:
        raise BadImage("file not found") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise BadImage(f"decompression bomb guard: {exc}") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise BadImage(f"not a readable image ({type(exc).__name__}: {exc})") from None
    w, h = img.size
    if limit is not None and w * h > limit:
        img.close()
        raise BadImage(f"{w}x{h} = {w * h} pixels exceeds the limit of {limit} (decompression bomb guard)")
    return img


def to_rgb8(img: Image.Image) -> np.ndarray:
    """Any PIL image as an HxWx3 uint8 RGB array (see the module policy)."""
    mode = img.mode
    if mode == "RGB":
        return np.asarray(img, dtype=np.uint8)
    if mode.startswith("I;16") or mode == "I":
        arr = np.asarray(img).astype(np.int64)
        if mode == "I" and arr.size and arr.max() <= 255 and arr.min() >= 0:
            v = arr.astype(np.uint8)
        else:
            v = ((np.clip(arr, 0, 65535) * 255 + 32767) // 65535).astype(np.uint8)
        return np.repeat(v[..., None], 3, axis=2)
    if mode == "F":
        raise BadImage("floating-point image: no defined 8-bit range")
    has_alpha = mode in ("RGBA", "LA", "PA", "La", "RGBa") or (mode == "P" and "transparency" in img.info)
    if has_alpha:
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return np.asarray(Image.alpha_composite(white, rgba).convert("RGB"), dtype=np.uint8)
    return np.asarray(img.convert("RGB"), dtype=np.uint8)


def load_rgb(path: str | Path, *, draft: int | tuple[int, int] | None = None,
             max_pixels: int | None = None) -> tuple[np.ndarray, tuple[int, int]]:
    """Decode ``path`` to (HxWx3 uint8 RGB, (H, W) of the full-size upright image): the one
    reader of photos (EXIF orientation applied, so the pixels are in the frame of the
    manifest's sizes, boxes and masks).

    ``draft``: the smallest side length the caller needs, or the smallest (width, height)
    of the upright image; a JPEG may then be decoded at a reduced scale (never below it).
    Raises :class:`BadImage`.
    """
    img = _open(path, max_pixels)
    with img:
        w, h = img.size
        orientation = _orientation(img)
        full_hw = (w, h) if orientation in _SWAPS_AXES else (h, w)
        if draft and img.format == "JPEG":
            need_w, need_h = (draft, draft) if isinstance(draft, int) else draft
            # the decoder scales the stored frame: a rotated photo's upright width is its stored height
            img.draft(None, (need_h, need_w) if orientation in _SWAPS_AXES else (need_w, need_h))
        try:
            img.load()
            upright = ImageOps.exif_transpose(img) if orientation != 1 else img
            arr = to_rgb8(upright)
        except BadImage:
            raise
        except (OSError, SyntaxError, ValueError, MemoryError, EOFError) as exc:
            raise BadImage(f"corrupt or truncated ({type(exc).__name__}: {exc})") from None
    return np.ascontiguousarray(arr), full_hw


def resize_square(arr: np.ndarray, size: int) -> np.ndarray:
    """Resize an HxWx3 uint8 image to size x size, whole image, no crop.

    Box (area) averaging when shrinking (no aliasing of fine crystal edges), bilinear when
    growing. PIL, not cv2: cv2's thread pool can deadlock in a forked cache builder.
    """
    if arr.shape[0] == size and arr.shape[1] == size:
        return arr
    shrink = arr.shape[0] >= size and arr.shape[1] >= size
    img = Image.fromarray(arr).resize((size, size), Image.Resampling.BOX if shrink else Image.Resampling.BILINEAR)
    return np.asarray(img, dtype=np.uint8)


def resize_mask(mask: np.ndarray, size: int) -> np.ndarray:
    """A 0/1 mask to size x size: area fraction >= 1/2 is mineral (sharper than nearest)."""
    if mask.shape == (size, size):
        return mask
    shrink = mask.shape[0] >= size and mask.shape[1] >= size
    img = Image.fromarray(mask * np.uint8(255)).resize(
        (size, size), Image.Resampling.BOX if shrink else Image.Resampling.BILINEAR)
    return (np.asarray(img) >= 128).astype(np.uint8)
