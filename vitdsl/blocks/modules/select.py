from __future__ import annotations

import torch
from torch import nn


class Select(nn.Module):
    """Tokens start..end-1 of a (B, N, D) sequence."""

    def __init__(self, start: int, end: int):
        super().__init__()
        self.start, self.end = start, end

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, self.start:self.end]

    def extra_repr(self) -> str:
        return f"tokens {self.start}..{self.end - 1}"
