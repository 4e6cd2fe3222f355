"""Relative-position tables resized for another window, as timm resizes them when it loads a checkpoint into a
model of another window size (BEiT's method, which timm uses for Swin, BEiT and MaxViT): the source offsets are
spread over a geometric progression that reaches the new window's extent, and each head's (2w−1)×(2w−1) table is
read there by linear interpolation, the edge values held beyond the ends. Near offsets keep their values; far
ones stretch, which suits biases learned mostly for close neighbours better than an even bicubic resize."""
from __future__ import annotations

import torch


def _progression(src: int, dst: int) -> torch.Tensor:
    """The ``src`` source offsets placed symmetrically about 0, steps growing by the ratio q that makes the
    outermost reach ``dst // 2`` (q found by bisection in [1.01, 1.5], as BEiT)."""
    half = src // 2

    def reach(q: float) -> float:
        return (1.0 - q ** half) / (1.0 - q)

    low, high = 1.01, 1.5
    while high - low > 1e-6:
        q = (low + high) / 2.0
        low, high = (low, q) if reach(q) > dst // 2 else (q, high)
    offsets, at = [], 1.0
    for i in range(half):
        offsets.append(at)
        at += q ** (i + 1)
    return torch.tensor([-o for o in reversed(offsets)] + [0.0] + offsets)


def _weights(points: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """(len(targets), len(points)) linear-interpolation matrix on the irregular ``points``, ends held."""
    right = torch.bucketize(targets, points).clamp(max=len(points) - 1)
    left = (right - 1).clamp(min=0)
    to_left = (targets - points[left]).clamp(min=0)
    to_right = (points[right] - targets).clamp(min=0)
    on_point = (to_left == 0) & (to_right == 0)
    to_left, to_right = to_left.masked_fill(on_point, 1.0), to_right.masked_fill(on_point, 1.0)
    w = torch.zeros(len(targets), len(points))
    rows = torch.arange(len(targets))
    w.index_put_((rows, left), to_right / (to_left + to_right), accumulate=True)
    w.index_put_((rows, right), to_left / (to_left + to_right), accumulate=True)
    return w


def resize(tables: torch.Tensor, size: int) -> torch.Tensor:
    """``tables`` (heads, s, s), s = 2w−1, resized to (heads, size, size)."""
    src = tables.shape[-1]
    if src == size:
        return tables
    targets = torch.arange(-(size // 2), size // 2 + 1, dtype=torch.float32)
    w = _weights(_progression(src, size), targets)
    return (w @ tables.float() @ w.t()).to(tables.dtype)
