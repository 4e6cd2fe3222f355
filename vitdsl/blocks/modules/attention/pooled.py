"""MViT's pooling attention on tokens of a patch grid (the ``pool-attn`` block)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..common import DropPath, make_norm
from ..common import norm_eps as paper_eps
from .core import Attention


def rel_offsets(q: int, k: int) -> torch.Tensor:
    """(q, k) rows of a 2·max(q, k) − 1 table: the offset of query i and key j on the finer of the two grids,
    each side scaled up to it (MViTv2's decomposed relative positions)."""
    q_ratio, k_ratio = max(k / q, 1.0), max(q / k, 1.0)
    dist = torch.arange(q)[:, None] * q_ratio - torch.arange(k)[None] * k_ratio + (k - 1) * k_ratio
    return dist.long()


class PoolAttention(Attention):
    """``shortcut(x) + drop_path(γ · out(attend(pool(q), pool(k), pool(v)) + pool(q)))`` on (B, N, C) tokens of
    ``prefix`` special tokens and an h×w ``grid``; the output has the queries' grid and ``dim_out`` channels."""

    def __init__(self, dim: int, dim_out: int, heads: int, dim_head: int, grid: tuple[int, int], prefix: int,
                 pool: str, kernel: int, q_stride: int, kv_stride: int, rel_pos: str, residual_pool: bool,
                 qkv_bias: bool, out_bias: bool, project_out: bool, attn_dropout: float, dropout: float, norm: str,
                 norm_type: str, residual: bool, layer_scale: float | None, drop_path: float,
                 norm_eps: float | None = None):
        super().__init__(heads, dim_head, attn_dropout=attn_dropout)
        self.norm = make_norm(norm_type, dim, norm_eps) if norm == "pre" else None
        # queries, keys and values at the output width; the output projection keeps it
        self.init_projections(dim_out, qkv_bias, out_bias, project_out, dropout, qkv=False)
        self.qkv = nn.Linear(dim, 3 * heads * dim_head, bias=qkv_bias)
        self.grid, self.prefix, self.residual_pool = tuple(grid), prefix, residual_pool
        h, w = self.grid
        self.q_grid, self.k_grid = (h // q_stride, w // q_stride), (h // kv_stride, w // kv_stride)
        eps = paper_eps("layer", norm_eps)  # the pooling LayerNorms': the block's norm_eps, else 1e-6 (timm's)
        for name, stride in (("q", q_stride), ("k", kv_stride), ("v", kv_stride)):
            op = norm_op = None
            if kernel > 1 or stride > 1:
                if pool == "conv":
                    op = nn.Conv2d(dim_head, dim_head, kernel, stride, kernel // 2, groups=dim_head, bias=False)
                    norm_op = nn.LayerNorm(dim_head, eps=eps)
                else:
                    op = (nn.MaxPool2d if pool == "max" else nn.AvgPool2d)(kernel, stride, kernel // 2)
            setattr(self, f"pool_{name}", op)
            setattr(self, f"norm_{name}", norm_op)
        self.rel_pos_h = self.rel_pos_w = None
        if rel_pos == "decomposed":
            (qh, qw), (kh, kw) = self.q_grid, self.k_grid
            self.rel_pos_h = nn.Parameter(torch.zeros(2 * max(qh, kh) - 1, dim_head))
            self.rel_pos_w = nn.Parameter(torch.zeros(2 * max(qw, kw) - 1, dim_head))
            nn.init.trunc_normal_(self.rel_pos_h, std=0.02)
            nn.init.trunc_normal_(self.rel_pos_w, std=0.02)
            self.register_buffer("rel_index_h", rel_offsets(qh, kh), persistent=False)
            self.register_buffer("rel_index_w", rel_offsets(qw, kw), persistent=False)
        self.residual = residual
        self.shortcut = nn.Linear(dim, dim_out) if residual and dim != dim_out else None
        s = q_stride
        self.shortcut_pool = nn.MaxPool2d(s + 1, s, (s + 1) // 2) if residual and s > 1 else None
        self.gamma = nn.Parameter(torch.full((dim_out,), float(layer_scale))) if layer_scale is not None else None
        self.drop_path = DropPath(drop_path) if drop_path > 0 else None

    def on_grid(self, t: torch.Tensor, op: nn.Module) -> torch.Tensor:
        """``op`` on the grid part of (..., N, C) tokens (a (…·, C, h, w) map), the special tokens kept."""
        p, (h, w) = self.prefix, self.grid
        lead, c = t.shape[:-2], t.shape[-1]
        grid = op(t[..., p:, :].reshape(-1, h, w, c).permute(0, 3, 1, 2))
        grid = grid.flatten(2).transpose(1, 2).reshape(*lead, -1, c)
        return torch.cat((t[..., :p, :], grid), dim=-2) if p else grid

    def pooled(self, t: torch.Tensor, name: str) -> torch.Tensor:
        op, norm = getattr(self, f"pool_{name}"), getattr(self, f"norm_{name}")
        if op is not None:
            t = self.on_grid(t, op)
        return norm(t) if norm is not None else t

    def rel_bias(self, q: torch.Tensor) -> torch.Tensor:
        """The logits' bias (B, heads, Nq, Nk) from the pooled queries; zero for the special tokens."""
        (qh, qw), (kh, kw), p = self.q_grid, self.k_grid, self.prefix
        r = q[:, :, p:].reshape(*q.shape[:2], qh, qw, -1)
        rel_h = torch.einsum("bnyxc,ykc->bnyxk", r, self.rel_pos_h[self.rel_index_h])
        rel_w = torch.einsum("bnyxc,xkc->bnyxk", r, self.rel_pos_w[self.rel_index_w])
        bias = (rel_h[..., :, None] + rel_w[..., None, :]).reshape(*q.shape[:2], qh * qw, kh * kw)
        return F.pad(bias, (p, 0, p, 0)) if p else bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        xn = self.norm(x) if self.norm is not None else x
        q, k, v = self.qkv(xn).view(b, n, 3, self.heads, self.dim_head).permute(2, 0, 3, 1, 4).unbind(0)
        q, k, v = self.pooled(q, "q"), self.pooled(k, "k"), self.pooled(v, "v")
        out = self.attend(q, k, v, bias=self.rel_bias(q) if self.rel_pos_h is not None else None)
        if self.residual_pool:
            out = out + q
        out = self.branch(self.merge(out))
        if not self.residual:
            return out
        shortcut = self.shortcut(xn) if self.shortcut is not None else x
        if self.shortcut_pool is not None:
            shortcut = self.on_grid(shortcut, self.shortcut_pool)
        return shortcut + out

