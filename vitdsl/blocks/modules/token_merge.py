from __future__ import annotations

import torch
from torch import nn

from .common import make_norm, randn
from .padded import Padding, padding_keys


class TokenMerge(nn.Module):
    """(B, N, D) → (B, K, D): K learned queries attend over the normalised tokens, which are also the values.
    The padding rows that token sampling leaves get no weight, so an image's result does not depend
    on how many tokens the others in its batch kept."""

    reads_extras = True

    def __init__(self, dim: int, tokens: int, norm: str, init_std: float, eps: float | None = None):
        super().__init__()
        self.norm = make_norm(norm, dim, eps)
        self.queries = nn.Parameter(randn(tokens, dim, std=init_std))
        self.scale = dim ** -0.5

    def forward(self, x: torch.Tensor, extras: Padding | None = None) -> torch.Tensor:
        mask = padding_keys(extras)
        if self.norm is not None:
            x = self.norm(x)
        logits = self.queries @ x.transpose(-1, -2) * self.scale
        if mask is not None:
            logits = logits.masked_fill(~mask[:, None, :], float("-inf"))
        return logits.softmax(dim=-1) @ x
