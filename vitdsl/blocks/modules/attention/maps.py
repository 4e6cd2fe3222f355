"""Attention over the positions of a feature map, computed channels-last on whole maps: q, k and v
are projected on the map and only then cut into windows (or not: global), so keys and values can
come from a strided convolution (Twins, ScalableViT) and the values can be convolved as one map."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from ..onednn import linear
from .numerics import SelfAttention
from .windows import AXES, relative_index


class MapAttention(SelfAttention):
    """Global attention (``window`` None) or attention within windows on a (B, C, H, W) map, or on
    (B, N, C) tokens that fill ``grid``.

    ``kv_reduction`` r > 1: keys and values from an r×r stride-r convolution (global only); with
    ``kv_norm``, from the ``kv`` Linear on the map that the convolution ``sr`` (width to width) and the
    LayerNorm ``sr_norm`` sub-sample. ``kv_pool`` p: from the ``kv`` Linear on the map pooled to p×p, then
    the 1×1 convolution ``sr``, ``sr_norm`` and a GELU.
    ``value_conv`` k: a k×k convolution of the value map, added to the attention output before
    the output projection. Projections: a fused ``qkv`` for windows; ``q`` and ``kv`` for global
    attention, so the state_dict does not depend on r (``kv`` is a Linear when r == 1).
    """

    def __init__(self, window: tuple[int, int] | None, partition: str, rel_pos_bias: str, kv_reduction: int,
                 value_conv: int | None, grid: tuple[int, int] | None, kv_norm: bool = False,
                 kv_pool: int | None = None, **kwargs):
        super().__init__(qkv=window is not None, **kwargs)
        dim, (inner, _, inner_v) = kwargs["dim"], self.widths
        self.window = tuple(window) if window is not None else None
        self.partition, self.reduction, self.grid, self.pool = partition, kv_reduction, grid, kv_pool
        if self.window is None:
            self.qkv = None
            self.q = nn.Linear(dim, inner, bias=kwargs["qkv_bias"])
            r = kv_reduction
            self.kv = nn.Linear(dim, inner + inner_v, bias=kwargs["qkv_bias"]) if r == 1 or kv_norm else \
                nn.Conv2d(dim, inner + inner_v, r, stride=r, bias=kwargs["qkv_bias"])
            if kv_norm:  # the code's nn.LayerNorm(dim): PyTorch's eps
                self.sr, self.sr_norm = nn.Conv2d(dim, dim, r, stride=r), nn.LayerNorm(dim)
            if kv_pool:
                self.sr, self.sr_norm, self.sr_act = nn.Conv2d(dim, dim, 1), nn.LayerNorm(dim), nn.GELU()
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

    def patterns(self, h: int, w: int) -> tuple[str, dict[str, int]]:
        """The einops pattern from a (B, H, W, heads·D) map to its windows' heads, and the sizes."""
        if self.window is None:
            return "b h w (heads d) -> b heads (h w) d", dict(heads=self.heads)
        (sh, sw), (rows, cols) = self.window, AXES[self.partition]
        sizes = dict(sh=sh, sw=sw, gh=h // sh, gw=w // sw, heads=self.heads)
        return f"b {rows} {cols} (heads d) -> (b gh gw) heads (sh sw) d", sizes

    def reduce(self, t: torch.Tensor) -> torch.Tensor:
        """The r×r stride-r kv convolution on a channels-last map. Without gradients, a Linear over its patch
        vectors: the same products, without converting the large kernel to channels-last on every call. With
        them, eagerly, the convolution itself: the Linear would keep its patches, a copy of the map, for the
        backward, where the convolution keeps the map that q's projection keeps already (PVT v2-b1, batch 16:
        44 MiB), in the same time. Compiled, the Linear again. Its patch vectors hold channels innermost
        (r s c), so the copy reads whole runs of channels and inductor keeps the stage's maps channels-last.
        Ordered (c r s), as the kernel is, inductor stored the maps rows innermost to suit the copy, and the
        stage's LayerNorms over channels ran unvectorised (PVT v2-b1 compiled training step, batch 16: 2.73-2.76 s
        against 2.94-2.99 s; the convolution ran as slowly as (c r s))."""
        conv = self.sr if hasattr(self, "sr") else self.kv
        if torch.is_grad_enabled() and not torch.compiler.is_compiling():
            kv = F.conv2d(t.permute(0, 3, 1, 2), conv.weight, conv.bias, stride=self.reduction).permute(0, 2, 3, 1)
        else:
            patches = rearrange(t, "b (h r) (w s) c -> b h w (r s c)", r=self.reduction, s=self.reduction)
            kv = F.linear(patches, conv.weight.permute(0, 2, 3, 1).flatten(1), conv.bias)
        return linear(self.sr_norm(kv), self.kv) if hasattr(self, "sr") else kv

    def pooled(self, t: torch.Tensor) -> torch.Tensor:
        """Keys and values from the channels-last map average-pooled to p×p (the 1×1 conv as a Linear)."""
        p = F.adaptive_avg_pool2d(t.permute(0, 3, 1, 2), self.pool).permute(0, 2, 3, 1)
        return linear(self.sr_act(self.sr_norm(F.linear(p, self.sr.weight.flatten(1), self.sr.bias))), self.kv)

    def mix(self, t: torch.Tensor) -> torch.Tensor:
        _, h, w, _ = t.shape
        if self.qkv is not None:
            q, k, v = linear(t, self.qkv).split(self.widths, dim=-1)
        else:
            q = linear(t, self.q)
            kv = self.pooled(t) if self.pool else linear(t, self.kv) if self.reduction == 1 else self.reduce(t)
            k, v = kv.split(self.widths[1:], dim=-1)
        cut, sizes = self.patterns(h, w)
        outer, inner = cut.split(" -> ")
        out = self.attend(*(rearrange(t, cut, **sizes) for t in (q, k, v)))  # k, v: of the reduced map
        out = rearrange(out, f"{inner} -> {outer}", **(dict(sizes, h=h) if self.window is None else sizes))
        if self.value_conv is not None:
            out = out + self.value_conv(v.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        return self.output(out)
