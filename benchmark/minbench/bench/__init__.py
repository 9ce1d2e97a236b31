"""Speed and memory benchmarks (``minbench bench ...``), side by side in one run.

Each module here holds one benchmark's work function (``bench/data.py``: ``bench_data``,
and so on), taking plain values and returning its result as a dict; ``cli/bench.py``
declares their arguments. Results are printed as JSON and written with ``--json FILE``
(``report``); speed is never asserted in unit tests.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from minbench.io import write_json_atomic


def report(result: dict, json_path: Path | None) -> int:
    """Print a benchmark's result as JSON and write it to ``json_path`` when given."""
    json.dump(result, sys.stdout, indent=2)
    sys.stdout.write("\n")
    if json_path is not None:
        write_json_atomic(json_path, result)
    return 0
