"""Locality self-attention (``lsa-attn``): a learned temperature and no attention to oneself."""
from __future__ import annotations

import math

import torch
from torch import nn

from .tokens import TokenAttention


class LocalitySelfAttention(TokenAttention):
    """``temperature`` learned: logits scaled by exp(t), t initialised to log(scale); ``mask_self``: each
    token's own key masked out."""

    def __init__(self, temperature: str, mask_self: bool, **kwargs):
        super().__init__(**kwargs)
        self.temperature = nn.Parameter(torch.tensor(math.log(self.scale))) if temperature == "learned" else None
        self.mask_self = mask_self

    def fused(self) -> bool:
        return super().fused() and self.temperature is None and not self.mask_self

    def logits(self, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        if self.temperature is None:
            return super().logits(q, k)
        return (q @ k.transpose(-2, -1)) * self.temperature.exp()

    def pre_softmax(self, sim: torch.Tensor) -> torch.Tensor:
        if self.mask_self:  # -max, not -inf, as vit-pytorch: a lone token still gets weight 1
            eye = torch.eye(sim.shape[-2], sim.shape[-1], dtype=torch.bool, device=sim.device)
            sim = sim.masked_fill(eye, -torch.finfo(sim.dtype).max)
        return super().pre_softmax(sim)
