"""What the benchmark scripts share: the reference libraries' import, the thread count, interleaved timing
and the per-round ratios that every table reports."""
from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parent.parent
BUSY_SPREAD = 1.5  # a model whose round times vary more than this shared the CPU with something else


def import_references():
    """timm and vit-pytorch, after the torchvision stub they need (torchvision is not installable here);
    exits with the set-up commands when they are missing."""
    sys.path.insert(0, str(REPO / "tests"))
    import torchvision_stub

    torchvision_stub.install()
    try:
        import timm
        import vit_pytorch
    except ImportError as exc:
        print(f"error: {exc}.\nThe reference models (vit-pytorch, timm) come with the `make test` set-up; "
              "to install them by hand:\n"
              "  .venv/bin/pip install --no-deps vit-pytorch==1.26.11 timm==1.0.31\n"
              "  .venv/bin/pip install pillow huggingface_hub safetensors", file=sys.stderr)
        sys.exit(2)
    return timm, vit_pytorch


def default_threads() -> int:
    """The cores this process may run on (all of them unless an affinity mask says otherwise)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def interleave(tasks: dict[str, Callable[[], object]], rounds: int, iters: int = 1, warmup: int = 1,
               before: Callable[[str], None] | None = None,
               after: Callable[[str], None] | None = None) -> dict[str, list[float]]:
    """Seconds per call of each task, one figure per round: the median of that round's ``iters`` calls,
    which shrugs off the odd stalled call on a shared CPU. The order rotates from round to round, so that
    drift in machine speed (thermal, other load) hits every task alike. ``before`` and ``after`` run around
    every timed call, untimed (memory probes)."""
    names = list(tasks)
    for name in names:
        for _ in range(warmup):
            tasks[name]()
    times: dict[str, list[float]] = {name: [] for name in names}
    for order in rotations(names, rounds):
        for name in order:
            laps = []
            for _ in range(iters):
                if before is not None:
                    before(name)
                start = time.perf_counter()
                tasks[name]()
                laps.append(time.perf_counter() - start)
                if after is not None:
                    after(name)
            times[name].append(statistics.median(laps))
    return times


def rotations(names: list[str], rounds: int) -> list[list[str]]:
    """The order of each round: ``names`` rotated by one more every round."""
    return [names[r % len(names):] + names[:r % len(names)] for r in range(rounds)]


def spread(values: list[float]) -> dict[str, float]:
    """Median, min and max of a series."""
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def ratios(ours: list[float], theirs: list[float]) -> dict:
    """``ours / theirs`` within each round, and the median and range of those per-round ratios."""
    per_round = [a / b for a, b in zip(ours, theirs)]
    return {**spread(per_round), "per_round": per_round}


def busiest(times: dict[str, list[float]]) -> float:
    """The largest max/min of any task's round times: above BUSY_SPREAD the ratios are less reliable."""
    return max(max(t) / min(t) for t in times.values())


def busy_note(factor: float) -> str:
    return (f"note: a model's round times varied {factor:.1f}x: the CPU was busy with something else; "
            "ratios are less reliable (rerun, or try fewer --threads)")
