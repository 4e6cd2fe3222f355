"""Attention over (B, C, H, W) feature maps with convolutional q/k/v projections."""
from __future__ import annotations

import torch
from einops import rearrange
from torch import nn

from .attention import Attention
from .common import DropPath, make_act, norm_eps
from .conv import ChannelLayerNorm


class ChannelRMSNorm(nn.RMSNorm):
    """RMSNorm over the channels of (B, C, H, W)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


def map_norm(kind: str, dim: int, eps: float | None = None) -> nn.Module:
    """A norm over the channels of each position of a feature map."""
    e = norm_eps(kind, eps)
    if kind == "batch":
        return nn.BatchNorm2d(dim, eps=e)
    if kind == "rms":
        return ChannelRMSNorm(dim, eps=e)
    return ChannelLayerNorm(dim, eps=e, bias=kind != "layer-nobias")


class ConvProjection(nn.Module):
    """pointwise: 1×1 conv; pointwise-bn: 1×1 conv → BN; separable: depthwise k×k → BN → 1×1 conv."""

    def __init__(self, cin: int, cout: int, kind: str, kernel: int, stride: int, bias: bool):
        super().__init__()
        if kind == "separable":
            self.dw = nn.Conv2d(cin, cin, kernel, stride, kernel // 2, groups=cin, bias=bias)
            self.norm = nn.BatchNorm2d(cin)
            self.conv = nn.Conv2d(cin, cout, 1, bias=bias)
        else:
            self.dw = None
            self.conv = nn.Conv2d(cin, cout, 1, stride, bias=bias)
            self.norm = nn.BatchNorm2d(cout) if kind == "pointwise-bn" else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.dw is not None:
            return self.conv(self.norm(self.dw(x)))
        x = self.conv(x)
        return self.norm(x) if self.norm is not None else x


def distance_index(h: int, w: int, q_stride: int, kv_stride: int) -> torch.Tensor:
    """(queries, keys) index |Δrow|·w + |Δcol| into an (h·w)-row table, positions in input coordinates."""
    def grid(s: int) -> torch.Tensor:
        rows, cols = torch.arange(0, h, s), torch.arange(0, w, s)
        return torch.stack(torch.meshgrid(rows, cols, indexing="ij"), dim=-1).reshape(-1, 2)

    rel = (grid(q_stride)[:, None] - grid(kv_stride)[None]).abs()
    return rel[..., 0] * w + rel[..., 1]


class ConvAttention(Attention):
    """``x + drop_path(γ · out(attend(q(x), kv(x))))`` on feature maps, with the placement options of
    ``MixerSpec`` (norm over channels; no residual when the block changes the map). The attention core
    and the residual are Attention's; the projections are convolutions and the output has its own act
    and norm."""

    channels_first = True

    def __init__(self, dim: int, dim_out: int, heads: int, dim_head: int, dim_value: int, proj: str,
                 proj_kernel: int, q_stride: int, kv_stride: int, qkv_bias: bool, out_bias: bool,
                 project_out: bool, attn_dropout: float, dropout: float, pos_bias_map: tuple[int, int] | None,
                 out_act: str, out_norm: str, norm: str, norm_type: str, residual: bool,
                 layer_scale: float | None, drop_path: float, norm_eps: float | None = None,
                 pos_bias: str = "distance", qkv_layout: str = "grouped"):
        super().__init__(heads, dim_head, dim_value, attn_dropout=attn_dropout)
        # the norm sits over channels, on the input's or (post) the output's width
        self.norm_position = norm
        self.norm = map_norm(norm_type, dim if norm == "pre" else dim_out, norm_eps) if norm != "none" else None
        self.per_head = qkv_layout == "per-head"
        if self.per_head and q_stride == kv_stride == 1:  # the same weights as q and kv, in one projection
            self.qkv = ConvProjection(dim, heads * (2 * dim_head + dim_value), proj, proj_kernel, 1, qkv_bias)
            self.q = self.kv = None
        else:
            self.qkv = None
            self.q = ConvProjection(dim, heads * dim_head, proj, proj_kernel, q_stride, qkv_bias)
            self.kv = ConvProjection(dim, heads * (dim_head + dim_value), proj, proj_kernel, kv_stride, qkv_bias)
        self.pos_bias = self.pos_table = None
        if pos_bias_map is not None:
            h, w = pos_bias_map
            if pos_bias == "attention-bias":
                self.pos_table = nn.Parameter(torch.zeros(heads, h * w))
            else:
                self.pos_bias = nn.Embedding(h * w, heads)
            self.register_buffer("pos_index", distance_index(h, w, q_stride, kv_stride), persistent=False)
        self.out_act = make_act(out_act)
        self.out = nn.Conv2d(heads * dim_value, dim_out, 1, bias=out_bias) if project_out else None
        self.out_norm = nn.BatchNorm2d(dim_out) if out_norm != "none" else None
        if out_norm == "batch-zero":
            nn.init.zeros_(self.out_norm.weight)
        self.out_drop = nn.Dropout(dropout) if dropout > 0 else None
        self.residual = residual
        self.gamma = nn.Parameter(torch.full((dim_out,), float(layer_scale))) if layer_scale is not None else None
        self.drop_path = DropPath(drop_path) if drop_path > 0 else None

    def bias(self) -> torch.Tensor | None:
        if self.pos_table is not None:
            return self.pos_table[:, self.pos_index]
        if self.pos_bias is None:
            return None
        # vit-pytorch's LeViT divides the table by the logit scale, i.e. multiplies it by √dim_head
        return self.pos_bias(self.pos_index).permute(2, 0, 1) * self.dim_head ** 0.5

    def mix(self, x: torch.Tensor) -> torch.Tensor:
        h, dk = self.heads, self.dim_head
        if self.qkv is not None:  # channels are (heads, q k v)
            qh = x.shape[-2]
            q, k, v = rearrange(self.qkv(x), "b (h d) y x -> b h (y x) d", h=h).split([dk, dk, self.dim_value], -1)
        else:
            q, kv = self.q(x), self.kv(x)
            qh = q.shape[-2]
            # channels are (heads, width); per head: (heads, k v)
            q = rearrange(q, "b (h d) y x -> b h (y x) d", h=h)
            if self.per_head:
                k, v = rearrange(kv, "b (h d) y x -> b h (y x) d", h=h).split([dk, self.dim_value], -1)
            else:
                k = rearrange(kv[:, :h * dk], "b (h d) y x -> b h (y x) d", h=h)
                v = rearrange(kv[:, h * dk:], "b (h d) y x -> b h (y x) d", h=h)
        out = rearrange(self.attend(q, k, v), "b h (y x) d -> b (h d) y x", y=qh)
        if self.out_act is not None:
            out = self.out_act(out)
        if self.out is not None:
            out = self.out(out)
        if self.out_norm is not None:
            out = self.out_norm(out)
        if self.out_drop is not None:
            out = self.out_drop(out)
        return out
