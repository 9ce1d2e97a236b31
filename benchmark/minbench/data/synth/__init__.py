"""The embedded dataset ``synth``: a procedural, deterministic imitation of the Fersman
Mineralogical Museum photographs (MineralImage5k), so every command works offline.

Species come from a curated table of mineralogical facts (``species.csv``, read by
``species.py``: system, habits, colours with how common each is, lustre, transparency,
associations, commonness, a field-guide sentence); every class is a species. Crystals are
parametric polyhedra of the species' habits and system (``habits.py``) plus
gemmology-mineral-database meshes where it has the species; non-crystalline aggregates are
procedural (``meshes.py``), posed and shaded by lustre on a matrix beside a reference cube
and a paper label (``scene.py`` chooses, ``render.py`` draws, with ``shading.py`` for lustre
and ``props.py`` for the cube and the label); rock, backdrop, light and collection are drawn
independently of the species. The splits have the release's shape and hold out whole
species for zero-shot (``splits.py``); ``driver.py`` drives it all (a module named
``generate`` would shadow the function).

Truth recorded per row: class label (the species, ``"fluorite"``), satellites, description,
``mask_path`` (the class's own mineral bodies; the matrix, satellite minerals and the cube
are excluded), ``bbox`` (specimen = matrix + crystals +
satellites), ``cube_bbox`` (empty when the photo has no cube), ``text_boxes`` (label
lines), ``px_per_cm`` (scale of the plane through the cube's centre) and ``size_cm`` (the
specimen's longest 3-D dimension, to the millimetre; not its 2-D box over the cube's scale).
Same seed and size, same bytes in every file.

Only this file is imported by ``minbench --help`` paths; the heavy parts load on use.
"""

from __future__ import annotations

import os

from minbench.data.synth.options import EMBEDDED_SIZES, GENERATOR_VERSION, SEED_LIMIT, check_seed

__all__ = ["EMBEDDED_SIZES", "GENERATOR_VERSION", "SEED_LIMIT", "check_seed", "generate"]


def generate(out: str | os.PathLike, *, seed: int = 0, size: str = "small", workers: int | None = None,
             progress: bool = False):
    """Generate the embedded dataset into ``out`` and return its ``manifest.DatasetInfo``.

    ``size``: ``tiny`` (tests, 256x192), ``small`` (the default, 1024x768) or ``full``
    (near the real subset sizes). Same seed, version and size give identical bytes whatever
    the number of ``workers`` (default: all cores): nothing run-dependent (time taken, worker
    count, paths) is written into ``out``. ``seed``: an integer, ``0 <= seed < 2**32``.
    ``progress`` shows a bar and a summary (with the images/s).
    """
    from minbench.data.synth.driver import generate as _generate

    return _generate(out, seed=seed, size=size, workers=workers, progress=progress)
