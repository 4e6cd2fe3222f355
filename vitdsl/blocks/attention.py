"""The attention family: one implementation, scoped globally or to local windows.

All attention blocks are residual mixers (norm, residual, layer scale, drop path; see ``MixerSpec``)
and run on ``torch.nn.functional.scaled_dot_product_attention`` unless maps are being recorded.
"""
from __future__ import annotations

from typing import Literal

from pydantic import Field, PositiveInt, model_validator

from .base import MixerSpec, ShapeError, divisors_hint, linear_params, need, register
from .shape import Shape


class AttentionSpec(MixerSpec):
    heads: PositiveInt | None = Field(None, description="Number of heads. When unset: width / dim_head.")
    dim_head: PositiveInt | None = Field(None, description="Width of one head. When unset: width / heads "
                                         "(64 when heads is unset too).")
    qkv_bias: bool = Field(False, description="Bias in the query/key/value projection.")
    out_bias: bool = Field(True, description="Bias in the output projection.")
    project_out: Literal["always", "auto"] = Field(
        "always", description="auto: no output projection when heads == 1 and dim_head == width "
                              "(vit-pytorch's rule); always: always project.")
    attn_dropout: float = Field(0.0, ge=0, lt=1, description="Dropout on the attention weights.")
    dropout: float = Field(0.0, ge=0, lt=1, description="Dropout after the output projection.")
    temperature: Literal["fixed", "learned"] = Field(
        "fixed", description="fixed: logits scaled by dim_head^-0.5; learned: by exp(t), t one learned scalar "
                             "initialised to log(dim_head^-0.5) (LSA, vit-pytorch's small-dataset ViT).")
    mask_self: bool = Field(False, description="Mask each token's attention to itself (the diagonal; LSA).")

    def geometry(self, dim: int) -> tuple[int, int]:
        """(heads, dim_head) for a token width, checking that they fit."""
        heads, dim_head = self.heads, self.dim_head
        if heads is None and dim_head is None:
            dim_head = 64
        if heads is None:
            if dim % dim_head:
                raise ShapeError(f"width {dim} is not divisible by dim_head {dim_head}, so heads cannot be derived",
                                 hint="set heads explicitly, or a dim_head that divides the width")
            heads = dim // dim_head
        if dim_head is None:
            if dim % heads:
                raise ShapeError(f"width {dim} is not divisible by heads {heads}, so dim_head cannot be derived",
                                 hint="set dim_head explicitly, or a number of heads that divides the width")
            dim_head = dim // heads
        return heads, dim_head

    def projects_out(self, dim: int) -> bool:
        heads, dim_head = self.geometry(dim)
        return self.project_out == "always" or not (heads == 1 and dim_head == dim)

    def attention_params(self, dim: int, extra: int = 0) -> int:
        heads, dim_head = self.geometry(dim)
        inner = heads * dim_head
        n = linear_params(dim, 3 * inner, self.qkv_bias) + self.mixer_params(dim) + extra
        n += 1 if self.temperature == "learned" else 0
        if self.projects_out(dim):
            n += linear_params(inner, dim, self.out_bias)
        return n

    def attention_flops(self, tokens: int, group: int, dim: int) -> int:
        """FLOPs for `tokens` tokens attending within groups of `group` tokens."""
        heads, dim_head = self.geometry(dim)
        inner = heads * dim_head
        n = 2 * tokens * dim * 3 * inner + 4 * tokens * group * inner
        if self.projects_out(dim):
            n += 2 * tokens * inner * dim
        return n

    def attention_kwargs(self, dim: int) -> dict:
        heads, dim_head = self.geometry(dim)
        return dict(dim=dim, heads=heads, dim_head=dim_head, qkv_bias=self.qkv_bias, out_bias=self.out_bias,
                    project_out=self.projects_out(dim), attn_dropout=self.attn_dropout, dropout=self.dropout,
                    temperature=self.temperature, mask_self=self.mask_self, **self.mixer_kwargs())


@register
class GlobalAttn(AttentionSpec):
    """Multi-head self-attention in which every token attends to every token."""

    block = "global-attn"
    takes = ("tokens",)
    family = "attention"

    def infer(self, x: Shape) -> Shape:
        self.geometry(x.features)
        return x

    def count_params(self, x: Shape) -> int:
        return self.attention_params(x.features)

    def flops(self, x: Shape) -> int:
        n, d = x.dims
        return self.attention_flops(n, n, d)

    def pattern(self, x: Shape) -> str:
        return "global"

    def build(self, x: Shape):
        from .modules.attention import Attention

        return Attention(**self.attention_kwargs(x.features))


@register
class LocalAttn(AttentionSpec):
    """Self-attention within windows of a feature map.

    ``partition: block`` attends within non-overlapping w×w windows (Swin/MaxViT block attention);
    ``partition: grid`` attends within a w×w grid of tokens spread evenly over the whole map (MaxViT
    grid attention: a sparse, global mix). Takes and gives a feature map (C, H, W).
    """

    block = "local-attn"
    takes = ("image",)
    family = "attention"

    partition: Literal["block", "grid"] = Field("block", description="block: contiguous windows; "
                                                "grid: dilated windows that span the whole map.")
    window: PositiveInt = Field(7, description="Window side w: attention runs over w×w tokens.")
    dim_head: PositiveInt | None = Field(32, description="Width of one head. When unset: width / heads.")
    rel_pos_bias: bool = Field(True, description="Learned relative position bias, a (2w-1)² × heads table.")

    @model_validator(mode="after")
    def _geometry_given(self):
        if self.heads is None and self.dim_head is None:
            raise ValueError("set heads or dim_head")
        return self

    def infer(self, x: Shape) -> Shape:
        _, h, w = x.dims
        win = self.window
        for side, size in (("height", h), ("width", w)):
            need(size % win == 0,
                 f"window {win} does not divide the feature map {h}×{w} ({side} {size})",
                 divisors_hint(size, win, f"feature-map {side}s"))
        self.geometry(x.features)
        return x

    def count_params(self, x: Shape) -> int:
        heads, _ = self.geometry(x.features)
        table = (2 * self.window - 1) ** 2 * heads if self.rel_pos_bias else 0
        return self.attention_params(x.features, table)

    def flops(self, x: Shape) -> int:
        c, h, w = x.dims
        return self.attention_flops(h * w, self.window ** 2, c)

    def pattern(self, x: Shape) -> str:
        kind = "window" if self.partition == "block" else "grid"
        return f"{kind} {self.window}×{self.window}"

    def build(self, x: Shape):
        from .modules.attention import LocalAttention

        return LocalAttention(partition=self.partition, window=self.window, rel_pos_bias=self.rel_pos_bias,
                              **self.attention_kwargs(x.features))
