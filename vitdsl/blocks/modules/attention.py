"""Multi-head attention: fused scaled_dot_product_attention, or the explicit softmax path while
attention maps are being recorded (``record_attention``)."""
from __future__ import annotations

import contextlib
import math
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .common import Mixer

# Set by ``record_attention``: called with (module, attention weights) from the explicit path.
_recorder: list[Callable[[nn.Module, torch.Tensor], None] | None] = [None]
_explicit: list[bool] = [False]


@contextlib.contextmanager
def explicit_attention(record: Callable[[nn.Module, torch.Tensor], None] | None = None):
    """Run attention with an explicit softmax (so FLOP counters and recorders see every product)."""
    old = _explicit[0], _recorder[0]
    _explicit[0], _recorder[0] = True, record
    try:
        yield
    finally:
        _explicit[0], _recorder[0] = old


class Attention(Mixer):
    """Self-attention over (B, N, D) tokens."""

    def __init__(self, dim: int, heads: int, dim_head: int, qkv_bias: bool, out_bias: bool, project_out: bool,
                 attn_dropout: float, dropout: float, temperature: str = "fixed", mask_self: bool = False, **mixer):
        super().__init__()
        self.init_mixer(dim, **mixer)
        self.heads, self.dim_head = heads, dim_head
        inner = heads * dim_head
        self.scale = dim_head ** -0.5
        self.attn_dropout = attn_dropout
        self.qkv = nn.Linear(dim, 3 * inner, bias=qkv_bias)
        self.out = nn.Linear(inner, dim, bias=out_bias) if project_out else None
        self.out_drop = nn.Dropout(dropout) if dropout > 0 else None
        # LSA: a learned log-temperature and no attention to oneself (explicit path only)
        self.temperature = nn.Parameter(torch.tensor(math.log(self.scale))) if temperature == "learned" else None
        self.mask_self = mask_self

    def bias(self) -> torch.Tensor | None:
        return None

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        bias = self.bias()
        # On CPU an additive bias sends SDPA to its math fallback, which is this same path plus a
        # "safe softmax" pass: measured 1.2–1.8× slower for MaxViT's 7×7 windows.
        lsa = self.temperature is not None or self.mask_self
        if not _explicit[0] and not lsa and (bias is None or q.device.type != "cpu"):
            p = self.attn_dropout if self.training else 0.0
            return F.scaled_dot_product_attention(q, k, v, attn_mask=bias, dropout_p=p)
        if self.temperature is None:
            sim = (q * self.scale) @ k.transpose(-2, -1)
        else:
            sim = (q @ k.transpose(-2, -1)) * self.temperature.exp()
        if bias is not None:
            sim = sim + bias
        if self.mask_self:  # -max, not -inf, as vit-pytorch: a lone token still gets weight 1
            eye = torch.eye(sim.shape[-2], sim.shape[-1], dtype=torch.bool, device=sim.device)
            sim = sim.masked_fill(eye, -torch.finfo(sim.dtype).max)
        attn = sim.softmax(dim=-1)
        if _recorder[0] is not None:
            _recorder[0](self, attn)
        attn = F.dropout(attn, self.attn_dropout, self.training)
        return attn @ v

    def mix(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, self.dim_head).permute(2, 0, 3, 1, 4).unbind(0)
        out = self.attend(q, k, v).transpose(1, 2).reshape(b, n, self.heads * self.dim_head)
        if self.out is not None:
            out = self.out(out)
        if self.out_drop is not None:
            out = self.out_drop(out)
        return out


def relative_index(window: int) -> torch.Tensor:
    """(w², w²) index into a (2w-1)² table: (Δrow + w - 1)·(2w - 1) + (Δcol + w - 1)."""
    pos = torch.arange(window)
    grid = torch.stack(torch.meshgrid(pos, pos, indexing="ij")).flatten(1).T  # (w², 2)
    rel = grid[:, None, :] - grid[None, :, :] + window - 1
    return rel[..., 0] * (2 * window - 1) + rel[..., 1]


class LocalAttention(Attention):
    """Attention within w×w windows of a (B, C, H, W) feature map: contiguous blocks or a dilated grid."""

    def __init__(self, partition: str, window: int, rel_pos_bias: bool, **kwargs):
        super().__init__(**kwargs)
        self.partition, self.window = partition, window
        if rel_pos_bias:
            self.rel_pos_bias = nn.Embedding((2 * window - 1) ** 2, self.heads)
            self.register_buffer("rel_pos_index", relative_index(window), persistent=False)
        else:
            self.rel_pos_bias = None

    def bias(self) -> torch.Tensor | None:
        if self.rel_pos_bias is None:
            return None
        return self.rel_pos_bias(self.rel_pos_index).permute(2, 0, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        s = self.window
        gh, gw = h // s, w // s
        # windows: (b gh gw) (s s) c ; block: h = (gh s), grid: h = (s gh)
        if self.partition == "block":
            t = x.view(b, c, gh, s, gw, s).permute(0, 2, 4, 3, 5, 1)
        else:
            t = x.view(b, c, s, gh, s, gw).permute(0, 3, 5, 2, 4, 1)
        t = super().forward(t.reshape(b * gh * gw, s * s, c)).view(b, gh, gw, s, s, c)
        # back to (b, c, h, w), kept channels-last in memory so the next token-wise block needs no copy
        t = t.permute(0, 1, 3, 2, 4, 5) if self.partition == "block" else t.permute(0, 3, 1, 4, 2, 5)
        return t.reshape(b, h, w, c).permute(0, 3, 1, 2)
