"""Attention from queries to context tokens (``cross-attn``): CaiT/XCiT class attention, CrossViT's fusion."""
from __future__ import annotations

import torch
from torch import nn

from ..common import make_norm
from .numerics import SelfAttention


class CrossAttention(SelfAttention):
    """Queries (the leading special tokens, or all tokens) attend to context tokens; see ``cross-attn``.
    Separate ``q`` and ``kv`` projections: queries and keys/values read different tokens."""

    def __init__(self, queries: int | None, context_skip: int, include_self: bool, context_norm: bool,
                 query_dim: int, context_residual: bool = False, projection: str = "linear", **kwargs):
        super().__init__(qkv=False, **kwargs)
        dim, inner = kwargs["dim"], self.heads * self.dim_head
        self.queries, self.context_skip = queries, context_skip
        self.include_self, self.context_norm, self.context_residual = include_self, context_norm, context_residual
        self.q = nn.Linear(dim, inner, bias=kwargs["qkv_bias"])
        self.kv = nn.Linear(dim, 2 * inner, bias=kwargs["qkv_bias"])
        projected = query_dim != dim
        self.project_in = self.projector(projection, query_dim, dim, kwargs) if projected else nn.Identity()
        self.project_out = self.projector(projection, dim, query_dim, kwargs) if projected else nn.Identity()
        self.inner_residual = projected and projection == "norm-act"  # residual at the context's width

    @staticmethod
    def projector(projection: str, cin: int, cout: int, kwargs: dict) -> nn.Module:
        if projection == "linear":
            return nn.Linear(cin, cout)
        return nn.Sequential(make_norm(kwargs["norm_type"], cin, kwargs.get("norm_eps")), nn.GELU(),
                             nn.Linear(cin, cout))

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        q_in = x[:, :self.queries] if self.queries is not None else x
        context = (x if context is None else context)[:, self.context_skip:]
        h = h_in = self.project_in(q_in)
        if self.norm is not None:
            h = self.norm(h)
            if self.context_norm:
                context = self.norm(context)
        kv_in = torch.cat((h, context), dim=1) if self.include_self else context
        k, v = self.kv(kv_in).chunk(2, dim=-1)
        y = self.branch(self.merge(self.attend(self.split(self.q(h)), self.split(k), self.split(v))))
        y = self.project_out(self.join(y, h_in)) if self.inner_residual else self.join(self.project_out(y), q_in)
        if self.queries is None:
            return y
        rest = x[:, self.queries:]
        if self.context_residual:  # one input: the context is these very tokens, normalised
            rest = rest + self.branch(context)
        return torch.cat((y, rest), dim=1)
