"""Which dataset a command uses: ``--data DIR``, else the embedded one (made on first use)."""

from __future__ import annotations

from pathlib import Path

from minbench.errors import UserError
from minbench.io import file_lock
from minbench.data.manifest import MANIFEST_FILE
from minbench.paths import cache_dir

DEFAULT_SYNTH_SIZE = "small"
DEFAULT_SYNTH_SEED = 0


def embedded_dir(size: str = DEFAULT_SYNTH_SIZE, seed: int = DEFAULT_SYNTH_SEED) -> Path:
    """Cache folder of the embedded dataset for (size, seed, generator version)."""
    from minbench.data.synth import GENERATOR_VERSION

    return cache_dir() / "datasets" / f"synth-{size}-seed{seed}-v{GENERATOR_VERSION}"


def resolve_dataset(data: str | Path | None, *, generate_if_missing: bool = True) -> Path:
    """The dataset folder to use; generates the embedded default on first use."""
    if data is not None:
        folder = Path(data).expanduser()
        if not (folder / MANIFEST_FILE).is_file():
            raise UserError(f"--data {folder}: no {MANIFEST_FILE} there "
                            "(prepare one with `minbench data prepare --source PATH --out DIR`)")
        return folder
    folder = embedded_dir()
    if (folder / MANIFEST_FILE).is_file():
        return folder
    if not generate_if_missing:
        raise UserError(f"{folder}: the embedded dataset is not generated yet (run `minbench data generate`)")
    from minbench.data.synth import generate

    with file_lock(folder.parent / f".{folder.name}.lock"):
        if not (folder / MANIFEST_FILE).is_file():  # another process may have made it meanwhile
            generate(folder, seed=DEFAULT_SYNTH_SEED, size=DEFAULT_SYNTH_SIZE, progress=True)
    return folder
