"""Channels attending to channels within each head (``channel-attn``): XCiT's cross-covariance attention and
DaViT's channel group attention."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .numerics import SelfAttention


class CrossCovarianceAttention(SelfAttention):
    """Per head, a (dh × dh) softmax over channels. ``form`` cross-covariance: of l2-normalised queries and keys
    (normalised along the tokens), scaled by a learned per-head temperature (or its exp, ``exp``), applied to the
    values; channel-groups: of keys and values, scaled by dh^-0.5, applied to the queries (DaViT's code);
    channel-groups-v2: of queries and keys, scaled by n^-0.5, applied to the values. ``map``: the input is a
    (B, C, H, W) feature map, its positions the tokens."""

    def __init__(self, exp: bool = False, form: str = "cross-covariance", map: bool = False, **kwargs):
        super().__init__(**kwargs)
        if form == "cross-covariance":
            self.temperature = nn.Parameter(torch.ones(self.heads, 1, 1))
        self.exp, self.form, self.map = exp, form, map

    def fused(self) -> bool:
        return False  # channels attend to channels: no kernel for that

    def mix(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = (t.transpose(-2, -1) for t in self.qkv_heads(x))  # (b, h, dh, n)
        if self.form == "cross-covariance":
            q, k = F.normalize(q, dim=-1), F.normalize(k, dim=-1)
        elif self.form == "channel-groups":  # the roles as DaViT's code has them: softmax(kᵀv) weighs the queries
            q, k, v = k, v, q
        return self.merge(self.attend(q, k, v).transpose(-2, -1))

    def logits(self, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        sim = q @ k.transpose(-2, -1)
        if self.form == "cross-covariance":
            return sim * (self.temperature.exp() if self.exp else self.temperature)
        return sim * (self.scale if self.form == "channel-groups" else q.shape[-1] ** -0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.map:
            return super().forward(x)
        b, c, h, w = x.shape
        return super().forward(x.flatten(2).transpose(1, 2)).transpose(1, 2).reshape(b, c, h, w)
