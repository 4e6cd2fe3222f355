"""Global attention over (B, N, D) tokens (``global-attn``): every token attends to every token, with
memories, task tokens and keys from another sequence (MP3); and its variants across groups (ViViT) and
over channels (XCiT)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from .numerics import SelfAttention


class TokenAttention(SelfAttention):
    """Self-attention over tokens. ``memories``: learned tokens appended to the keys and values;
    ``task_tokens``: the first n tokens see everything, the others only each other."""

    def __init__(self, memories: int = 0, task_tokens: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.memories = nn.Parameter(torch.randn(memories, kwargs["dim"])) if memories else None
        self.task_tokens = task_tokens

    @property
    def takes_context(self) -> bool:
        """Whether ``forward(x, context=c)`` works: plain attention, whose keys and values can come from
        other tokens (MP3's pre-training attends to the visible tokens)."""
        return type(self) is TokenAttention and self.memories is None

    def mask(self, n: int, keys: int, device) -> torch.Tensor | None:
        if not self.task_tokens:
            return None
        t = self.task_tokens
        allowed = torch.zeros(n, keys, dtype=torch.bool, device=device)
        allowed[:t] = True
        allowed[t:, t:n] = True
        return allowed

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        if context is None:
            return super().forward(x)
        pre = self.norm_position == "pre"
        h, c = (self.norm(x), self.norm(context)) if pre else (x, context)  # one norm for both, as MP3
        return self.join(self.branch(self.mix(h, c)), x)

    def mix(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        if context is not None:  # queries from x, keys and values from the context: the one qkv weight, cut
            inner = self.widths[0]
            w, bias = self.qkv.weight, self.qkv.bias
            k, v = F.linear(context, w[inner:], None if bias is None else bias[inner:]).split(self.widths[1:], -1)
            q = F.linear(x, w[:inner], None if bias is None else bias[:inner])
            return self.merge(self.attend(self.split(q), self.split(k), self.split(v)))
        q, k, v = self.qkv_heads(x)
        keys = padding_keys(x)
        if self.memories is not None:
            inner = self.widths[0]
            kv_bias = self.qkv.bias[inner:] if self.qkv.bias is not None else None
            mk, mv = F.linear(self.memories, self.qkv.weight[inner:], kv_bias).split(self.widths[1:], dim=-1)
            k = torch.cat((k, self.split(mk.expand(x.shape[0], -1, -1))), dim=2)
            v = torch.cat((v, self.split(mv.expand(x.shape[0], -1, -1))), dim=2)
            if keys is not None:
                keys = F.pad(keys, (0, len(self.memories)), value=True)
        return self.merge(self.attend(q, k, v, None if keys is None else keys[:, None, None, :]))


def padding_keys(x: torch.Tensor) -> torch.Tensor | None:
    """(B, N) True on the real rows of token sampling's padded tokens, None for plain ones: no token may
    attend to padding, or an image's result would depend on the others in its batch."""
    from ..token_sampling import PaddedTokens  # it builds on attention

    return x.mask if isinstance(x, PaddedTokens) else None


class GroupAttention(TokenAttention):
    """Attention across the groups folded into the batch: (B·G, N, D) runs as (B·N, G, D), each token
    with the tokens at its position in the other groups."""

    def __init__(self, groups: int, **kwargs):
        super().__init__(**kwargs)
        self.groups = groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = super().forward(rearrange(x, "(b g) n d -> (b n) g d", g=self.groups))
        return rearrange(y, "(b n) g d -> (b g) n d", n=x.shape[1])


class CrossCovarianceAttention(SelfAttention):
    """XCiT's cross-covariance attention: per head, a (dh × dh) softmax over channels of l2-normalised
    queries and keys (normalised along the tokens), scaled by exp of a learned per-head temperature."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.temperature = nn.Parameter(torch.ones(self.heads, 1, 1))

    def fused(self) -> bool:
        return False  # channels attend to channels: no kernel for that

    def mix(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = (t.transpose(-2, -1) for t in self.qkv_heads(x))  # (b, h, dh, n)
        q, k = F.normalize(q, dim=-1), F.normalize(k, dim=-1)
        return self.merge(self.attend(q, k, v).transpose(-2, -1))

    def logits(self, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        return (q @ k.transpose(-2, -1)) * self.temperature.exp()
