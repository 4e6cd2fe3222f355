"""Global attention over (B, N, D) tokens (``global-attn``): every token attends to every token, or to
keys from another sequence (MP3); and across groups (ViViT)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from ..padded import padding_keys
from .numerics import SelfAttention
from .windows import relative_index


class TokenAttention(SelfAttention):
    """Self-attention over tokens; padded tokens (token sampling) are masked out of the keys."""

    reads_extras = True  # the padding that token sampling leaves (padded.py)

    @property
    def takes_context(self) -> bool:
        """Whether ``forward(x, context=c)`` works: plain attention, whose keys and values can come from
        other tokens (MP3's pre-training attends to the visible tokens)."""
        return type(self) is TokenAttention

    @property
    def takes_rows(self) -> bool:
        """Whether ``forward(x, rows=n)`` works: plain attention (no groups, no relative position table)."""
        return type(self) is TokenAttention

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None, extras=None,
                rows: int | None = None) -> torch.Tensor:
        """``rows``: the first ``rows`` tokens' outputs only, each still attending to every token (what
        ``Network.skip_unread_tokens`` asks of the last block when only the class token is read)."""
        pre = self.norm_position == "pre"
        if rows is not None:
            h = self.norm(x) if pre else x
            return self.join(self.branch(self.mix(h, rows=rows)), x[:, :rows])
        if context is None:
            if extras is None:
                return super().forward(x)
            return self.join(self.branch(self.mix(self.norm(x) if pre else x, keys=padding_keys(extras))), x)
        h, c = (self.norm(x), self.norm(context)) if pre else (x, context)  # one norm for both, as MP3
        return self.join(self.branch(self.mix(h, c)), x)

    def more_keys(self, x: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Keys and values beyond the tokens' own (memories); none here."""
        return k, v

    @property
    def adds_in_product(self) -> bool:
        # only this mix passes the residual to the output projection
        return type(self).mix is TokenAttention.mix and isinstance(self.out, nn.Linear)

    def mix(self, x: torch.Tensor, context: torch.Tensor | None = None, keys: torch.Tensor | None = None,
            rows: int | None = None, residual: torch.Tensor | None = None) -> torch.Tensor:
        if context is not None or rows is not None:
            # queries from x (its first rows), keys and values from the context (x): the one qkv weight, cut
            inner = self.widths[0]
            w, bias = self.qkv.weight, self.qkv.bias
            source = x if context is None else context
            k, v = F.linear(source, w[inner:], None if bias is None else bias[inner:]).split(self.widths[1:], -1)
            q = F.linear(x if rows is None else x[:, :rows], w[:inner], None if bias is None else bias[:inner])
            return self.merge(self.attend(self.split(q), self.split(k), self.split(v)))
        q, k, v = self.qkv_heads(x)
        n = k.shape[2]
        k, v = self.more_keys(x, k, v)
        if keys is not None and k.shape[2] > n:  # the extra keys are never padding
            keys = F.pad(keys, (0, k.shape[2] - n), value=True)
        return self.merge(self.attend(q, k, v, None if keys is None else keys[:, None, None, :]), residual)


class GroupAttention(TokenAttention):
    """Attention across the groups folded into the batch: (B·G, N, D) runs as (B·N, G, D), each token
    with the tokens at its position in the other groups."""

    def __init__(self, groups: int, **kwargs):
        super().__init__(**kwargs)
        self.groups = groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = super().forward(rearrange(x, "(b g) n d -> (b n) g d", g=self.groups))
        return rearrange(y, "(b n) g d -> (b g) n d", n=x.shape[1])


def cls_relative_index(h: int, w: int, cls: bool) -> torch.Tensor:
    """The (n, n) index of tokens into a relative position table: patch pairs at query - key among the
    (2h-1)·(2w-1) offsets (``relative_index``); with a leading cls token, its pairs at the three rows after
    them: R for the cls token as query, R + 1 as key, R + 2 for cls to itself (BEiT)."""
    patches = relative_index(h, w)
    if not cls:
        return patches
    rows = (2 * h - 1) * (2 * w - 1)
    index = F.pad(patches, (1, 0, 1, 0))
    index[0, :], index[:, 0], index[0, 0] = rows, rows + 1, rows + 2
    return index


class RelPosTokenAttention(TokenAttention):
    """Token attention with a learned relative position bias over the patch grid (global-attn's
    ``rel_pos_bias: table``): an embedding of offsets × heads, zero at first as in BEiT."""

    def __init__(self, grid: tuple[int, int], cls: bool, **kwargs):
        super().__init__(**kwargs)
        h, w = grid
        self.rel_pos_bias = nn.Embedding((2 * h - 1) * (2 * w - 1) + (3 if cls else 0), self.heads)
        nn.init.zeros_(self.rel_pos_bias.weight)
        self.register_buffer("rel_pos_index", cls_relative_index(h, w, cls), persistent=False)

    def bias(self) -> torch.Tensor:
        return self.rel_pos_bias(self.rel_pos_index).permute(2, 0, 1)
