"""Which process this is under DDP, and gathering lists from every rank.

The bottom layer: console, pipelines and trainers ask here, so none of them asks another.
``torch`` is imported only by ``gather_objects``, so the rank check stays light.
"""

from __future__ import annotations

import os
from typing import Any


def is_rank_zero() -> bool:
    """True unless this process is a non-zero DDP rank (read from the launcher's environment)."""
    for var in ("RANK", "SLURM_PROCID", "JSM_NAMESPACE_RANK"):
        if var in os.environ:
            return int(os.environ[var]) == 0
    return int(os.environ.get("LOCAL_RANK", "0")) == 0 and int(os.environ.get("NODE_RANK", "0")) == 0


def gather_objects(items: list[Any]) -> list[Any]:
    """Concatenate a list from every DDP rank (``items`` itself when not distributed)."""
    import torch

    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return list(items)
    parts: list[Any] = [None] * torch.distributed.get_world_size()
    torch.distributed.all_gather_object(parts, list(items))
    return [x for part in parts for x in part]
