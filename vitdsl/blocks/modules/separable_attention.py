"""Depthwise-separable self-attention (SepViT's DSSA); see the ``separable-attn`` spec."""
from __future__ import annotations

import torch
from torch import nn

from .attention import LocalAttention
from .common import randn


class SeparableAttention(LocalAttention):
    """LocalAttention's windows and residual; ``mix`` gets the normalised tokens of all ``groups``
    windows of each image, stacked image-major as (B·groups, n, C)."""

    def __init__(self, partition: str, window: tuple[int, int], groups: int, **kwargs):
        super().__init__(partition=partition, window=window, rel_pos_bias="none", **kwargs)
        dim, inner = kwargs["dim"], self.heads * self.dim_head
        self.groups = groups
        self.window_token = nn.Parameter(randn(dim))
        self.token_norm = nn.LayerNorm(self.dim_head)
        self.token_act = nn.GELU()
        self.token_qk = nn.Linear(inner, 2 * inner)

    def mix(self, x: torch.Tensor) -> torch.Tensor:
        bg, n, c = x.shape
        h, dh = self.heads, self.dim_head
        x = torch.cat((self.window_token.expand(bg, 1, c), x), dim=1)
        q, k, v = self.qkv_heads(x)
        out = self.attend(q, k, v)  # (B·G, h, 1 + n, dh)
        tokens, out = out[:, :, 0], out[:, :, 1:]
        g = self.groups
        if g > 1:
            b = bg // g
            # per window and head: a query and a key from its window token, channels (h, 2, dh)
            qk = self.token_qk(self.token_act(self.token_norm(tokens)).reshape(b, g, h * dh))
            wq, wk = qk.view(b, g, h, 2, dh).permute(3, 0, 2, 1, 4).unbind(0)  # (B, h, G, dh) each
            values = out.reshape(b, g, h, n * dh).transpose(1, 2)  # a window's value: all its tokens
            out = self.attend(wq, wk, values).transpose(1, 2).reshape(bg, h, n, dh)
        return self.merge(out)
