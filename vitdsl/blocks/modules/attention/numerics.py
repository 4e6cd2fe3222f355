"""Numerics options of token attention (talking heads, re-attention, qk-norm) and ``SelfAttention``: the
core with Linear projections inside a residual mixer, which every token and window attention builds on."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..common import randn
from ..onednn import linear
from .core import Attention
from .rope import build_rope


class HeadRMSNorm(nn.Module):
    """Per-head RMS norm of queries or keys (ViT-22B's qk-norm): normalize(x)·√d·γ, γ per head and channel."""

    def __init__(self, heads: int, dim_head: int):
        super().__init__()
        self.scale = dim_head ** 0.5
        self.weight = nn.Parameter(torch.ones(heads, 1, dim_head))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(x, dim=-1) * self.scale * self.weight


class SelfAttention(Attention):
    """Attention with a Linear ``qkv`` (unless ``qkv`` is False: the subclass projects) and ``out``,
    inside the residual mixer, with the numerics options. Subclasses define ``mix`` or ``forward``."""

    def __init__(self, dim: int, heads: int, dim_head: int, qkv_bias: bool, out_bias: bool, project_out: bool,
                 attn_dropout: float, dropout: float, scale: float | None = None, dim_value: int | None = None,
                 head_mix: str = "none", qk_norm: bool = False, qkv: bool = True, talking_bias: bool = False,
                 rope: dict | None = None, **mixer):
        super().__init__(heads, dim_head, dim_value, scale, attn_dropout)
        self.init_mixer(dim, **mixer)
        self.init_projections(dim, qkv_bias, out_bias, project_out, dropout, qkv)
        self.head_mix = head_mix
        if head_mix == "talking" and talking_bias:  # CaiT's code: Linear layers over the heads, (out, in) weights
            self.talk_pre, self.talk_post = nn.Linear(heads, heads), nn.Linear(heads, heads)
        elif head_mix == "talking":
            self.mix_pre = nn.Parameter(randn(heads, heads))
            self.mix_post = nn.Parameter(randn(heads, heads))
        elif head_mix == "reattention":
            self.reattn = nn.Parameter(randn(heads, heads))
            self.reattn_norm = nn.LayerNorm(heads)
        self.q_norm = HeadRMSNorm(heads, dim_head) if qk_norm else nn.Identity()
        self.k_norm = HeadRMSNorm(heads, dim_head) if qk_norm else nn.Identity()
        self.rope = build_rope(dim_head, **rope) if rope else None
        if self.rope is not None:  # RoPE's ops on q and k are not cheap to recompute (recompute.py)
            self.recompute = False

    def fused(self) -> bool:
        return self.head_mix == "none"

    def prepare(self, q: torch.Tensor, k: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        q, k = self.q_norm(q), self.k_norm(k)
        return (q, k) if self.rope is None else (self.rope(q), self.rope(k))

    def pre_softmax(self, sim: torch.Tensor) -> torch.Tensor:
        if self.head_mix == "talking" and hasattr(self, "talk_pre"):
            return self.talk_pre(sim.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        if self.head_mix == "talking":
            sim = torch.einsum("bhij,hg->bgij", sim, self.mix_pre)
        return sim

    def post_softmax(self, attn: torch.Tensor) -> torch.Tensor:
        if self.head_mix == "talking" and hasattr(self, "talk_post"):
            return self.talk_post(attn.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        if self.head_mix == "talking":
            return torch.einsum("bhij,hg->bgij", attn, self.mix_post)
        if self.head_mix == "reattention":
            attn = torch.einsum("bhij,hg->bgij", attn, self.reattn)
            return self.reattn_norm(attn.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        return attn

    def qkv_heads(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """q, k and v, (B, heads, N, d) each, from channels-last tokens (B, N, D)."""
        if self.dim_value == self.dim_head:  # one view and permute, no copies per tensor
            b, n, _ = x.shape
            qkv = linear(x, self.qkv)
            return qkv.view(b, n, 3, self.heads, self.dim_head).permute(2, 0, 3, 1, 4).unbind(0)
        return tuple(self.split(t) for t in linear(x, self.qkv).split(self.widths, dim=-1))
