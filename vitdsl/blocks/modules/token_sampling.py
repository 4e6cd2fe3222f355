"""``token-ids``: which input tokens survived adaptive token sampling (``sampling-attn``, whose
module is in ``attention/sampling.py``); the padded tokens it reads are in ``padded.py``."""
from __future__ import annotations

import torch

from .padded import PaddedTokens, unpad

__all__ = ["PaddedTokens", "TokenIds", "unpad"]


class TokenIds(torch.nn.Module):
    """Source index of each token after the first ``prefix``, minus ``prefix``; −1 on padding."""

    def __init__(self, prefix: int):
        super().__init__()
        self.prefix = prefix

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, mask, ids = unpad(x)
        p = self.prefix
        return (ids[:, p:] - p).masked_fill(~mask[:, p:], -1)
