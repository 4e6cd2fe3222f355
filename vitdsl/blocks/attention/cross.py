"""``cross-attn``: queries (the leading special tokens, or all tokens) attend to context tokens."""
from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from ..base import linear_params, need, norm_params, register
from ..shape import Shape
from .core import Numerics


@register
class CrossAttn(Numerics):
    """Attention from the special tokens (queries) to a sequence of context tokens: CaiT/XCiT class
    attention (one input: the context is the sequence's own patch tokens) or CrossViT's fusion (two
    inputs: the context is the second input's patch tokens).

    Only the queries are updated (``q + f(q)``); the other tokens pass through unchanged. Keys and values
    are ``[norm(queries), context]`` with ``include_self``, the context itself not normalised unless
    ``context_norm``. When the context is wider or narrower than the queries, the queries are projected
    to its width and the result back (``projection``) and attention runs at the context's width.
    """

    block = "cross-attn"
    capabilities = frozenset({"attention"})
    takes = ("tokens",)
    arity = (1, 2)
    family = "attention"

    queries: Literal["prefix", "all"] = Field("prefix", description="prefix: the special tokens leading the "
                                              "sequence ask; all: every token does (a decoder's cross attention).")
    context: Literal["patches", "all"] = Field("patches", description="Which tokens of the context sequence "
                                               "are keys and values: its patch tokens, or all of them.")
    include_self: bool = Field(True, description="The queries' own tokens are keys and values too.")
    context_norm: bool = Field(False, description="Normalise the context with the block's norm as well.")
    context_residual: bool = Field(False, description="With context_norm, on one input: the context tokens are "
                                   "updated too, by their normalised selves through the layer scale and drop path "
                                   "(x + γ·norm(x)), as XCiT's class attention runs in its code (and timm).")
    projection: Literal["norm-act", "linear"] = Field(
        "norm-act", description="Queries of another width than the context's: norm-act = f and g are "
        "norm → GELU → Linear each (the block's norm type) and the residual is added at the context's width "
        "between them, g(f(q) + attn(norm([f(q), context]))), CrossViT's fusion (its Eq. 7–8, code and timm); "
        "linear = one Linear map each way inside the residual, q + g(attn(norm(f(q)), context)) "
        "(vit-pytorch, its compat overlay).")

    @model_validator(mode="after")
    def _plain(self):
        if self.norm == "post":
            raise ValueError("cross-attn takes no post norm")
        if self.context_residual and not (self.context_norm and self.norm == "pre" and self.queries == "prefix"
                                          and self.context == "patches"):
            raise ValueError("context_residual adds the normalised patch tokens to themselves: it needs "
                             "context_norm, norm: pre, queries: prefix and context: patches")
        return self

    def parts(self, x: Shape, ctx: Shape | None) -> tuple[int, int, int]:
        """(number of queries, number of context tokens, attention width)."""
        ctx = ctx or x
        q = x.prefix if self.queries == "prefix" else x.dims[0]
        c = ctx.dims[0] - ctx.prefix if self.context == "patches" else ctx.dims[0]
        return q, c, ctx.features

    def infer(self, x: Shape, ctx: Shape | None = None) -> Shape:
        if self.queries == "prefix":
            need(x.prefix >= 1, "cross-attn asks from the special tokens, but none lead the sequence",
                 "add '- tokens: {cls: 1}' before it, or set queries: all")
        q, c, width = self.parts(x, ctx)
        need(c >= 1, "cross-attn has no context tokens to attend to", "set context: all")
        need(ctx is None or not self.context_residual, "context_residual updates the block's own patch tokens, "
             "but the context here is a second input", "drop context_residual, or give one input")
        self.geometry(width)
        return x

    def count_params(self, x: Shape, ctx: Shape | None = None) -> int:
        _, _, width = self.parts(x, ctx)
        proj = 0
        if width != x.features:
            proj = linear_params(x.features, width) + linear_params(width, x.features)
            if self.projection == "norm-act":
                proj += norm_params(self.norm_type, x.features) + norm_params(self.norm_type, width)
        return self.attention_params(width, proj)

    def flops(self, x: Shape, ctx: Shape | None = None) -> int:
        q, c, width = self.parts(x, ctx)
        keys = c + (q if self.include_self else 0)
        heads, dim_head = self.geometry(width)
        inner = heads * dim_head
        n = 2 * q * width * inner + 2 * keys * width * 2 * inner + 4 * q * keys * inner
        n += self.mix_flops(heads, q, keys)
        if self.projects_out(width):
            n += 2 * q * inner * width
        if width != x.features:
            n += 2 * 2 * q * x.features * width
        return n

    def pattern(self, x: Shape, ctx: Shape | None = None) -> str:
        q, c, _ = self.parts(x, ctx)
        who = f"{q} cls" if self.queries == "prefix" else "all"
        return f"cross: {who} → {c} context" + self.pattern_extras()

    def build(self, x: Shape, ctx: Shape | None = None):
        from ..modules.attention import CrossAttention

        q, _, width = self.parts(x, ctx)
        kwargs = self.attention_kwargs(width)
        return CrossAttention(queries=q if self.queries == "prefix" else None,
                              context_skip=(ctx or x).prefix if self.context == "patches" else 0,
                              include_self=self.include_self, context_norm=self.context_norm,
                              context_residual=self.context_residual, projection=self.projection,
                              query_dim=x.features, **kwargs)
