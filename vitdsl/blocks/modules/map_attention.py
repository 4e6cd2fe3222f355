"""Attention over the positions of a feature map, computed channels-last on whole maps: q, k and v
are projected on the map and only then cut into windows (or not: global), so keys and values can
come from a strided convolution and the values can be convolved as one map."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .attention import Attention, relative_index


class MapAttention(Attention):
    """Global attention (``window`` None) or attention within windows on a (B, C, H, W) map, or on
    (B, N, C) tokens that fill ``grid``.

    ``kv_reduction`` r > 1: keys and values from an r×r stride-r convolution (global only).
    ``value_conv`` k: a k×k convolution of the value map, added to the attention output before
    the output projection. Projections: a fused ``qkv`` for windows; ``q`` and ``kv`` for global
    attention, so the state_dict does not depend on r (``kv`` is a Linear when r == 1).
    """

    def __init__(self, window: tuple[int, int] | None, partition: str, rel_pos_bias: str, kv_reduction: int,
                 value_conv: int | None, grid: tuple[int, int] | None, **kwargs):
        super().__init__(**kwargs)
        dim, (inner, _, inner_v) = kwargs["dim"], self.widths
        self.window = tuple(window) if window is not None else None
        self.partition, self.reduction, self.grid = partition, kv_reduction, grid
        if self.window is None:
            del self.qkv
            self.qkv = None
            self.q = nn.Linear(dim, inner, bias=kwargs["qkv_bias"])
            r = kv_reduction
            self.kv = nn.Linear(dim, inner + inner_v, bias=kwargs["qkv_bias"]) if r == 1 else \
                nn.Conv2d(dim, inner + inner_v, r, stride=r, bias=kwargs["qkv_bias"])
        self.value_conv = nn.Conv2d(inner_v, inner_v, value_conv, padding=value_conv // 2) if value_conv else None
        self.rel_pos_bias = None
        if rel_pos_bias == "table":
            wh, ww = self.window
            self.rel_pos_bias = nn.Embedding((2 * wh - 1) * (2 * ww - 1), self.heads)
            self.register_buffer("rel_pos_index", relative_index(wh, ww), persistent=False)

    def bias(self) -> torch.Tensor | None:
        if self.rel_pos_bias is None:
            return None
        return self.rel_pos_bias(self.rel_pos_index).permute(2, 0, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.grid is not None:  # tokens (B, N, C) in row-major grid order
            b, n, c = x.shape
            return super().forward(x.view(b, *self.grid, c)).reshape(b, n, c)
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)

    def cut(self, t: torch.Tensor) -> torch.Tensor:
        """(B, H, W, heads·D) → (B·windows, heads, positions per window, D)."""
        b, h, w, _ = t.shape
        if self.window is None:
            return t.reshape(b, h * w, self.heads, -1).transpose(1, 2)
        sh, sw = self.window
        gh, gw = h // sh, w // sw
        if self.partition == "block":  # h = (gh sh)
            t = t.view(b, gh, sh, gw, sw, self.heads, -1).permute(0, 1, 3, 5, 2, 4, 6)
        else:  # grid: h = (sh gh)
            t = t.view(b, sh, gh, sw, gw, self.heads, -1).permute(0, 2, 4, 5, 1, 3, 6)
        return t.reshape(b * gh * gw, self.heads, sh * sw, -1)

    def paste(self, out: torch.Tensor, b: int, h: int, w: int) -> torch.Tensor:
        """``cut``'s inverse for the attention output: → (B, H, W, heads·D)."""
        if self.window is None:
            return out.transpose(1, 2).reshape(b, h, w, -1)
        sh, sw = self.window
        out = out.reshape(b, h // sh, w // sw, self.heads, sh, sw, -1)
        out = out.permute(0, 1, 4, 2, 5, 3, 6) if self.partition == "block" else out.permute(0, 4, 1, 5, 2, 3, 6)
        return out.reshape(b, h, w, -1)

    def reduce(self, t: torch.Tensor) -> torch.Tensor:
        """The r×r stride-r kv convolution on a channels-last map, as a Linear over its (c r r) patch
        vectors: the same products, without converting the large kernel to channels-last on every call."""
        b, h, w, c = t.shape
        r = self.reduction
        patches = t.view(b, h // r, r, w // r, r, c).permute(0, 1, 3, 5, 2, 4).reshape(b, h // r, w // r, c * r * r)
        return F.linear(patches, self.kv.weight.flatten(1), self.kv.bias)

    def mix(self, t: torch.Tensor) -> torch.Tensor:
        b, h, w, _ = t.shape
        if self.qkv is not None:
            q, k, v = self.qkv(t).split(self.widths, dim=-1)
        else:
            q = self.q(t)
            k, v = (self.kv(t) if self.reduction == 1 else self.reduce(t)).split(self.widths[1:], dim=-1)
        out = self.paste(self.attend(self.cut(q), self.cut(k), self.cut(v)), b, h, w)
        if self.value_conv is not None:
            out = out + self.value_conv(v.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        if self.out is not None:
            out = self.out(out)
        if self.out_drop is not None:
            out = self.out_drop(out)
        return out
