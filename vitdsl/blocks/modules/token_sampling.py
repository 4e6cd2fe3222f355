"""``token-ids``: which input tokens survived adaptive token sampling (``sampling-attn``, whose
module is in ``attention/sampling.py``); the padded tokens it reads are in ``padded.py``."""
from __future__ import annotations

import torch

from .padded import Padding, padding_of

__all__ = ["Padding", "TokenIds", "padding_of"]


class TokenIds(torch.nn.Module):
    """Source index of each token after the first ``prefix``, minus ``prefix``; −1 on padding."""

    reads_extras = True

    def __init__(self, prefix: int):
        super().__init__()
        self.prefix = prefix

    def forward(self, x: torch.Tensor, extras: Padding | None = None) -> torch.Tensor:
        padding = padding_of(x, extras)
        mask, ids = padding.mask, padding.ids
        p = self.prefix
        return (ids[:, p:] - p).masked_fill(~mask[:, p:], -1)
