"""Will the weights fit? Estimated from the shape rules before a single tensor is allocated.

A shared blueprint can ask for any width (``dim: 10000000``); allocating first and failing later takes the
machine's memory down with it. ``build`` refuses, with the per-block culprits, a model whose weights
exceed the memory the system says is available, unless the user explicitly asks to try anyway.
"""
from __future__ import annotations

import os
from typing import Any, Iterable

from ..errors import VitdslError
from .build import Graph, info


def available_bytes(device: Any = None) -> int | None:
    """Memory the device can give now: for a CUDA device what its driver reports free; for the CPU Linux's
    MemAvailable, else the physical memory; None when unknown (other devices)."""
    kind = "cpu" if device is None else str(device).split(":")[0]
    if kind == "cuda":
        import torch

        return torch.cuda.mem_get_info(device)[0] if torch.cuda.is_available() else None
    if kind != "cpu":
        return None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def _human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB", "PB"):
        if n < 1000 or unit == "PB":
            return f"{n:,.1f} {unit}"
        n /= 1000
    return f"{n:,.1f} PB"


def check_fits(graphs: Iterable[Graph], device: Any = None, bytes_per_param: int = 4) -> None:
    """Refuse weights larger than the memory available on ``device`` (CPU or CUDA; nothing is checked for
    meta and other devices), naming the largest blocks."""
    graphs = [g for g in graphs if g is not None]
    params = sum(info(g)["params"] for g in graphs)
    need, have = params * bytes_per_param, available_bytes(device)
    if have is None or need <= have:
        return
    sizes = sorted(((n.spec.count_params(*inputs), n.path) for g in graphs for n, inputs, _ in g), reverse=True)
    largest = ", ".join(f"{path} ({count:,})" for count, path in sizes[:3])
    raise VitdslError(f"the weights need {_human(need)} ({params:,} parameters), more than the "
                      f"{_human(have)} of memory available; largest blocks: {largest}",
                      hint="'vitdsl summary' traces it without allocating weights; build with "
                           "--skip-memory-check (check_memory=False in Python) to try anyway")
