"""Global attention over (B, N, D) tokens (``global-attn``): every token attends to every token, or to
keys from another sequence (MP3); and across groups (ViViT)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange

from ..padded import padding_keys
from .numerics import SelfAttention


class TokenAttention(SelfAttention):
    """Self-attention over tokens; padded tokens (token sampling) are masked out of the keys."""

    @property
    def takes_context(self) -> bool:
        """Whether ``forward(x, context=c)`` works: plain attention, whose keys and values can come from
        other tokens (MP3's pre-training attends to the visible tokens)."""
        return type(self) is TokenAttention

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        if context is None:
            return super().forward(x)
        pre = self.norm_position == "pre"
        h, c = (self.norm(x), self.norm(context)) if pre else (x, context)  # one norm for both, as MP3
        return self.join(self.branch(self.mix(h, c)), x)

    def more_keys(self, x: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Keys and values beyond the tokens' own (memories); none here."""
        return k, v

    def mix(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        if context is not None:  # queries from x, keys and values from the context: the one qkv weight, cut
            inner = self.widths[0]
            w, bias = self.qkv.weight, self.qkv.bias
            k, v = F.linear(context, w[inner:], None if bias is None else bias[inner:]).split(self.widths[1:], -1)
            q = F.linear(x, w[:inner], None if bias is None else bias[:inner])
            return self.merge(self.attend(self.split(q), self.split(k), self.split(v)))
        q, k, v = self.qkv_heads(x)
        n = k.shape[2]
        k, v = self.more_keys(x, k, v)
        keys = padding_keys(x)
        if keys is not None and k.shape[2] > n:  # the extra keys are never padding
            keys = F.pad(keys, (0, k.shape[2] - n), value=True)
        return self.merge(self.attend(q, k, v, None if keys is None else keys[:, None, None, :]))


class GroupAttention(TokenAttention):
    """Attention across the groups folded into the batch: (B·G, N, D) runs as (B·N, G, D), each token
    with the tokens at its position in the other groups."""

    def __init__(self, groups: int, **kwargs):
        super().__init__(**kwargs)
        self.groups = groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = super().forward(rearrange(x, "(b g) n d -> (b n) g d", g=self.groups))
        return rearrange(y, "(b n) g d -> (b g) n d", n=x.shape[1])
