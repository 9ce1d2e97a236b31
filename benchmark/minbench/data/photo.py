"""Reading photos cheaply: displayed size from the header, and whether a file decodes.

EXIF orientation matters: a photo stored 6000x4000 with orientation 6 is shown
4000x6000, and the manifest records the displayed size.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ORIENTATION_TAG = 0x0112
ROTATED = (5, 6, 7, 8)  # orientations that swap width and height


@dataclass(frozen=True)
class ImageInfo:
    width: int  # displayed (EXIF orientation applied)
    height: int
    orientation: int  # EXIF orientation 1..8 (1 when absent)


def orientation_of(im) -> int:
    """EXIF orientation of an open PIL image (1 when absent or unreadable)."""
    try:
        value = int(im.getexif().get(ORIENTATION_TAG, 1) or 1)
    except Exception:  # a damaged EXIF block must not cost the image
        return 1
    return value if 1 <= value <= 8 else 1


def _displayed(size: tuple[int, int], orientation: int) -> tuple[int, int]:
    return (size[1], size[0]) if orientation in ROTATED else size


def read_image_info(path: Path) -> ImageInfo | None:
    """Displayed size from the header alone (nothing decoded); None when unreadable."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            size, orientation = im.size, orientation_of(im)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return None
    return ImageInfo(*_displayed(size, orientation), orientation)


def read_image_infos(paths: list[Path], *, progress: bool = False) -> list[ImageInfo | None]:
    """``read_image_info`` of many files, in order, on a thread pool (header reads wait on the disk)."""
    with ThreadPoolExecutor(min(32, 4 * (os.cpu_count() or 2))) as pool:
        it = pool.map(read_image_info, paths)
        if progress and len(paths) > 200:
            from rich.progress import track

            it = track(it, total=len(paths), description="reading image headers", transient=True)
        return list(it)


def decode(path: Path, *, quick: bool = False) -> tuple[tuple[int, int] | None, str]:
    """(displayed size, '') when the file decodes, else (None, why).

    JPEGs decode in draft mode (DCT scaled to 1/8: every byte of the entropy-coded data
    is still read, so a cut or damaged file fails as at full size, ~8x faster).
    ``quick`` reads the header only.
    """
    from PIL import Image

    try:
        with Image.open(path) as im:
            size, orientation = im.size, orientation_of(im)
            if not quick:
                if im.format == "JPEG":
                    im.draft("RGB", (max(1, size[0] // 8), max(1, size[1] // 8)))
                im.load()
    except Exception as exc:  # PIL raises OSError, SyntaxError, ValueError, struct.error...
        return None, f"{type(exc).__name__}: {exc}"
    return _displayed(size, orientation), ""
