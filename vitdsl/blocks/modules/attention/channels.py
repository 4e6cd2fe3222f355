"""XCiT's cross-covariance attention (``channel-attn``): channels attend to channels."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .numerics import SelfAttention


class CrossCovarianceAttention(SelfAttention):
    """Per head, a (dh × dh) softmax over channels of l2-normalised queries and keys (normalised along
    the tokens), scaled by a learned per-head temperature (or its exp, ``exp``)."""

    def __init__(self, exp: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.temperature = nn.Parameter(torch.ones(self.heads, 1, 1))
        self.exp = exp

    def fused(self) -> bool:
        return False  # channels attend to channels: no kernel for that

    def mix(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = (t.transpose(-2, -1) for t in self.qkv_heads(x))  # (b, h, dh, n)
        q, k = F.normalize(q, dim=-1), F.normalize(k, dim=-1)
        return self.merge(self.attend(q, k, v).transpose(-2, -1))

    def logits(self, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        return (q @ k.transpose(-2, -1)) * (self.temperature.exp() if self.exp else self.temperature)
