"""The embedded dataset ``synth``: a procedural, deterministic imitation of the Fersman
Mineralogical Museum photographs (MineralImage5k), so every command works offline.

Species come from gemmology-mineral-database (``species.py``); crystals are its habit
meshes (``meshes.py``), posed and shaded by lustre on a host-rock matrix beside a
reference cube and a paper label (``scene.py`` chooses, ``render.py`` draws); the splits
have the release's shape (``splits.py``); ``driver.py`` drives it all (a module named ``generate`` would shadow the function).

Truth recorded per row: species (class label, e.g. ``"fluorite, green variety"``),
variety, satellites, description, ``mask_path`` (the species' own crystals only; the
matrix and satellite minerals are excluded), ``bbox`` (specimen = matrix + crystals +
satellites), ``cube_bbox``, ``text_boxes`` (label lines), ``px_per_cm`` (scale of the
specimen plane) and ``size_cm`` (longest side of ``bbox`` in px / ``px_per_cm``).

Only this file is imported by ``minbench --help`` paths; the heavy parts load on use.
"""

from __future__ import annotations

import os

GENERATOR_VERSION = "2.0"


def generate(out: str | os.PathLike, *, seed: int = 0, size: str = "small", workers: int | None = None,
             progress: bool = False):
    """Generate the embedded dataset into ``out`` and return its ``manifest.DatasetInfo``.

    ``size``: ``tiny`` (tests, 256x192), ``small`` (the default, 1024x768) or ``full``
    (near the real subset sizes). Same seed, version and size give identical bytes whatever
    the number of ``workers`` (default: all cores). ``progress`` shows a bar and a summary.
    """
    from minbench.data.synth.driver import generate as _generate

    return _generate(out, seed=seed, size=size, workers=workers, progress=progress)
