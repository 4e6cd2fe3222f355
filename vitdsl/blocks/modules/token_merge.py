from __future__ import annotations

import torch
from torch import nn

from .common import make_norm


class TokenMerge(nn.Module):
    """(B, N, D) → (B, K, D): K learned queries attend over the normalised tokens, which are also the values."""

    def __init__(self, dim: int, tokens: int, norm: str, init_std: float):
        super().__init__()
        self.norm = make_norm(norm, dim)
        self.queries = nn.Parameter(torch.randn(tokens, dim) * init_std)
        self.scale = dim ** -0.5

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.norm is not None:
            x = self.norm(x)
        attn = (self.queries @ x.transpose(-1, -2) * self.scale).softmax(dim=-1)
        return attn @ x
