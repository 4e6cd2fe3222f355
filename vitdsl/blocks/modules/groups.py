from __future__ import annotations

import torch
from torch import nn


class Ungroup(nn.Module):
    """(B·G, D) or (B·G, N, D) → (B, G·N, D): the groups folded into the batch, back as one sequence."""

    def __init__(self, groups: int):
        super().__init__()
        self.groups = groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0] // self.groups, -1, x.shape[-1])

    def extra_repr(self) -> str:
        return f"groups={self.groups}"
