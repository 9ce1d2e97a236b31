"""What a generation of the embedded dataset may be asked for: its version, sizes and seeds.

Light on purpose (no NumPy): the command line's choices and the cache's folder names read it.
"""

from __future__ import annotations

GENERATOR_VERSION = "3.0"
#: the sizes a generation offers (``splits.SIZES`` gives each its counts; a test keeps them equal)
EMBEDDED_SIZES = ("tiny", "small", "benchmark", "full")
# Seeds are integers in [0, SEED_LIMIT): what numpy's SeedSequence takes as one word, and a
# short, stable part of the cache folder's name.
SEED_LIMIT = 2**32


def check_seed(seed) -> int:
    """``seed`` as an int when it is one in ``[0, SEED_LIMIT)``; a one-line ``UserError`` otherwise."""
    import numbers

    from minbench.errors import UserError

    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise UserError(f"--seed {seed!r}: must be an integer (0 <= seed < 2**32)")
    if not 0 <= int(seed) < SEED_LIMIT:
        raise UserError(f"--seed {seed}: out of range (0 <= seed < 2**32)")
    return int(seed)
