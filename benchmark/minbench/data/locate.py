"""Which dataset a command uses: ``--data DIR``, else the embedded one (made on first use).

The embedded dataset's cache folder is taken only when complete: its ``manifest.parquet``
and a readable ``dataset.json`` (both land together, by one rename of the finished
temporary folder). Anything else under its name -- a temporary folder or a replaced copy
left by a killed generation, a folder missing its description -- is removed, under the
folder's lock, before it is generated again.
"""

from __future__ import annotations

from pathlib import Path

from minbench.data.manifest import MANIFEST_FILE
from minbench.errors import UserError
from minbench.io import ensure_writable, file_lock, leftovers_of, remove_paths
from minbench.paths import cache_dir

DEFAULT_SYNTH_SIZE = "small"
DEFAULT_SYNTH_SEED = 0


def embedded_dir(size: str | None = None, seed: int | None = None) -> Path:
    """Cache folder of the embedded dataset for (size, seed, generator version); the defaults
    are ``DEFAULT_SYNTH_SIZE`` and ``DEFAULT_SYNTH_SEED``."""
    from minbench.data.synth import GENERATOR_VERSION

    size = DEFAULT_SYNTH_SIZE if size is None else size
    seed = DEFAULT_SYNTH_SEED if seed is None else seed
    return cache_dir() / "datasets" / f"synth-{size}-seed{seed}-v{GENERATOR_VERSION}"


def is_dataset(folder: str | Path) -> bool:
    """Whether ``folder`` holds a complete dataset: a manifest and a readable ``dataset.json``."""
    from minbench.data.manifest import read_info

    folder = Path(folder)
    if not (folder / MANIFEST_FILE).is_file():
        return False
    try:
        read_info(folder)
    except UserError:
        return False
    return True


def generate_embedded(size: str | None = None, seed: int | None = None, *, workers: int | None = None,
                      replace: bool = False) -> Path:
    """The embedded dataset's cache folder, generated there unless already complete (or
    always, with ``replace``). One process generates at a time (a lock beside the folder);
    leftovers of an interrupted generation are removed first."""
    from minbench.data.synth import check_seed, generate
    from minbench.data.synth.driver import WRITE_HINT
    from minbench.data.synth.splits import size_config

    size = size_config(DEFAULT_SYNTH_SIZE if size is None else size).name  # bad input: before any work
    seed = check_seed(DEFAULT_SYNTH_SEED if seed is None else seed)
    folder = embedded_dir(size, seed)
    if not replace and is_dataset(folder):
        return folder
    # a read-only cache is named now (the lock file below would fail with a traceback)
    ensure_writable(folder.parent, f"the dataset {folder.name}", WRITE_HINT)
    with file_lock(folder.parent / f".{folder.name}.lock"):
        if replace or not is_dataset(folder):  # another process may have made it meanwhile
            _remove_leftovers(folder)
            generate(folder, seed=seed, size=size, workers=workers, progress=True)
    return folder


def _remove_leftovers(folder: Path) -> None:
    """Under the folder's lock: what an interrupted generation of ``folder`` left behind
    (``minbench.io.atomic_path``'s temporaries and replaced copies), and ``folder`` itself when
    it is not a complete dataset (it is the cache's own, by name)."""
    from minbench.console import notice

    stale = leftovers_of(folder, all_writers=True)
    if folder.exists() and not is_dataset(folder):
        notice(f"minbench: {folder} is not a complete dataset (an interrupted generation?); generating it again")
        stale.append(folder)
    remove_paths(stale)


def resolve_dataset(data: str | Path | None, *, generate_if_missing: bool = True) -> Path:
    """The dataset folder to use; generates the embedded default on first use."""
    if data is not None:
        folder = Path(data).expanduser()
        if not (folder / MANIFEST_FILE).is_file():
            raise UserError(f"--data {folder}: no {MANIFEST_FILE} there "
                            "(prepare one with `minbench data prepare --source PATH --out DIR`)")
        return folder
    folder = embedded_dir()
    if is_dataset(folder):
        return folder
    if not generate_if_missing:
        raise UserError(f"{folder}: the embedded dataset is not generated yet (run `minbench data generate`)")
    return generate_embedded()
