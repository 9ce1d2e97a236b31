"""Reading photo headers cheaply: the displayed size, without decoding.

EXIF orientation matters: a photo stored 6000x4000 with orientation 6 is shown
4000x6000, and the manifest records the displayed size (as ``data.decode`` loads it).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from minbench.data.decode import _SWAPS_AXES as ROTATED  # orientations that swap width and height
from minbench.data.decode import _orientation as orientation_of


@dataclass(frozen=True)
class ImageInfo:
    width: int  # displayed (EXIF orientation applied)
    height: int
    orientation: int  # EXIF orientation 1..8 (1 when absent)


def _displayed(size: tuple[int, int], orientation: int) -> tuple[int, int]:
    return (size[1], size[0]) if orientation in ROTATED else size


def read_image_info(path: Path) -> ImageInfo | None:
    """Displayed size from the header alone (nothing decoded); None when unreadable."""
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
        if not (progress and len(paths) > 200):
            return list(it)
        from minbench.console import progress as phase

        out = []
        with phase("reading image headers", len(paths), marks=4, unit="images") as bar:
            for info in it:
                out.append(info)
                bar.advance()
        return out
