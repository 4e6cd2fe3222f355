"""Attention on feature maps with convolutional query/key/value projections (LeViT, CvT).

Unlike ``global-attn`` (tokens, linear projections) the block keeps the map: q, k and v are
convolutions of the (C, H, W) input, so q can be strided (the block shrinks the map, LeViT) and k/v
can be strided (fewer keys, CvT), and the output is a map again.
"""
from __future__ import annotations

from typing import Literal

from pydantic import Field, PositiveInt, field_validator, model_validator

from .attention import AttentionSpec
from .base import Activation, linear_params, need, norm_params, register
from .conv import conv_params
from .shape import Shape


@register
class ConvAttn(AttentionSpec):
    """Multi-head attention over all positions of a feature map, with convolutional projections.

    ``proj`` picks the q/k/v projections: ``pointwise`` (1×1 conv), ``pointwise-bn`` (1×1 conv →
    BatchNorm, LeViT) or ``separable`` (depthwise k×k conv → BatchNorm → 1×1 conv, CvT). ``q_stride``
    subsamples the queries, so the output map is ⌈H/s⌉×⌈W/s⌉ (LeViT's shrink attention);
    ``kv_stride`` subsamples keys and values only (CvT). Keys may be narrower than values
    (``dim_value``); ``qkv_layout`` orders the projections' channels (per-head: LeViT's code). The
    output is ``out_act`` → 1×1 conv → ``out_norm`` → dropout, with ``dim`` channels. The pre/post norm
    is over channels. Takes and gives a feature map (C, H, W).
    """

    block = "conv-attn"
    capabilities = frozenset({"attention"})
    takes = ("image",)
    family = "attention"

    dim: PositiveInt | None = Field(None, description="Output channels; the input's when unset (a residual "
                                    "needs them equal).")
    qkv_bias: bool = Field(False, description="Biases in the q/k/v projection convolutions: off, as LeViT's "
                           "(convolution → BatchNorm). CvT's code has one in the pointwise step only, which this "
                           "option (the depthwise and the pointwise convolution alike) cannot say.")
    dim_value: PositiveInt | None = Field(None, description="Width of one head's values; dim_head (the key "
                                          "width) when unset.")
    proj: Literal["pointwise", "pointwise-bn", "separable"] = Field(
        "separable", description="q/k/v projections: pointwise = 1×1 conv; pointwise-bn = 1×1 conv → "
                                 "BatchNorm (LeViT); separable = depthwise proj_kernel conv → BatchNorm → "
                                 "1×1 conv (CvT).")
    proj_kernel: PositiveInt = Field(3, description="separable: kernel of the depthwise convolution (odd; "
                                     "padding kernel // 2).")
    q_stride: PositiveInt = Field(1, description="Stride of the query projection: the output map is "
                                  "⌈H/s⌉×⌈W/s⌉ (LeViT's shrink attention).")
    kv_stride: PositiveInt = Field(1, description="Stride of the key/value projection: attention runs over "
                                   "⌈H/s⌉×⌈W/s⌉ keys (CvT).")
    qkv_layout: Literal["grouped", "per-head"] = Field(
        "grouped", description="Channel order of the projections: grouped = a query projection, and a key/value "
                               "one giving all heads' keys, then all heads' values (vit-pytorch, CvT); per-head "
                               "= each head's query, key and value channels adjacent, in one projection of all "
                               "three where queries and keys share the map (LeViT's code, timm's qkv), else a "
                               "query projection and one of each head's key and value (timm's shrink kv). "
                               "Pointwise projections only.")
    pos_bias: Literal["none", "distance", "attention-bias"] = Field(
        "none", description="distance: a learned (H·W) × heads table indexed by |Δrow|·W + |Δcol| of each "
                            "query/key pair in input coordinates, added to the logits times √dim_head "
                            "(LeViT as vit-pytorch writes it); attention-bias: LeViT's code (and timm's "
                            "attention_biases): a learned heads × (H·W) table, indexed the same way, added to the "
                            "scaled logits as it is.")
    out_act: Activation | Literal["none"] = Field("none", description="Activation before the output "
                                                  "projection (LeViT: hardswish in the paper, gelu in vit-pytorch).")
    out_norm: Literal["none", "batch", "batch-zero"] = Field(
        "none", description="Norm after the output projection: batch = BatchNorm; batch-zero = BatchNorm "
                            "with γ initialised to 0, so a fresh block adds nothing (LeViT).")

    @field_validator("proj_kernel")
    @classmethod
    def _odd(cls, v: int) -> int:
        if v % 2 == 0:
            raise ValueError(f"proj_kernel must be odd, so that a stride-1 projection keeps the map size; got {v}")
        return v

    @model_validator(mode="after")
    def _fusable(self):
        if self.qkv_layout == "per-head" and self.proj == "separable":
            raise ValueError("qkv_layout per-head orders the channels of pointwise projections; separable ones "
                             "(CvT) have a depthwise convolution each: use proj pointwise or pointwise-bn")
        return self

    def fused_qkv(self) -> bool:
        """Whether one projection makes queries, keys and values (per-head, on one map)."""
        return self.qkv_layout == "per-head" and self.q_stride == self.kv_stride == 1

    # -- geometry ------------------------------------------------------------------------------
    def widths(self, x: Shape) -> tuple[int, int, int, int]:
        """(heads, key width, value width, output channels)."""
        heads, dk = self.geometry(x.features)
        return heads, dk, self.dim_value or dk, self.dim or x.features

    def projects_out(self, dim: int) -> bool:
        # vit-pytorch's 'auto' rule, with this block's value width and output channels
        heads, dk = self.geometry(dim)
        return self.project_out == "always" or not (heads == 1 and (self.dim_value or dk) == (self.dim or dim))

    def maps(self, x: Shape) -> tuple[tuple[int, int], tuple[int, int]]:
        """(query map, key/value map) sizes."""
        _, h, w = x.dims
        for name, s in (("q_stride", self.q_stride), ("kv_stride", self.kv_stride)):
            need(h >= s and w >= s, f"{name} {s} needs a feature map of at least {s}×{s}, got {h}×{w}",
                 f"use a larger input, or a smaller {name}")
        # a 1×1 conv, or an odd kernel padded by kernel // 2, at stride s gives ⌈n/s⌉
        q, kv = self.q_stride, self.kv_stride
        return (-(-h // q), -(-w // q)), (-(-h // kv), -(-w // kv))

    def infer(self, x: Shape) -> Shape:
        c, h, w = x.dims
        _, _, _, cout = self.widths(x)
        (qh, qw), _ = self.maps(x)
        if self.residual:
            need(cout == c and (qh, qw) == (h, w),
                 f"the residual needs the output map ({cout}×{qh}×{qw}) to equal the input ({c}×{h}×{w})",
                 "set residual: false for a block that changes the width or strides the queries")
        return Shape.image(cout, qh, qw)

    # -- rules ---------------------------------------------------------------------------------
    def proj_params(self, cin: int, cout: int) -> int:
        bias = self.qkv_bias
        if self.proj == "separable":
            depthwise = conv_params(cin, cin, self.proj_kernel, groups=cin, bias=bias)
            return depthwise + 2 * cin + conv_params(cin, cout, 1, bias=bias)
        return conv_params(cin, cout, 1, bias=bias) + (2 * cout if self.proj == "pointwise-bn" else 0)

    def proj_flops(self, cin: int, cout: int, positions: int) -> int:
        n = 2 * positions * cin * cout
        if self.proj == "separable":
            n += 2 * positions * cin * self.proj_kernel ** 2
        return n

    def count_params(self, x: Shape) -> int:
        c, h, w = x.dims
        heads, dk, dv, cout = self.widths(x)
        n = self.proj_params(c, heads * dk) + self.proj_params(c, heads * (dk + dv))
        if self.projects_out(c):
            n += linear_params(heads * dv, cout, self.out_bias)
        if self.out_norm != "none":
            n += 2 * cout
        if self.pos_bias != "none":
            n += h * w * heads
        if self.norm != "none":
            width = c if self.norm == "pre" else cout
            n += 2 * width if self.norm_type == "batch" else norm_params(self.norm_type, width)
        if self.layer_scale is not None:
            n += cout
        return n

    def flops(self, x: Shape) -> int:
        c = x.features
        heads, dk, dv, cout = self.widths(x)
        (qh, qw), (kh, kw) = self.maps(x)
        nq, nk = qh * qw, kh * kw
        n = self.proj_flops(c, heads * dk, nq) + self.proj_flops(c, heads * (dk + dv), nk)
        n += 2 * nq * nk * heads * (dk + dv)
        if self.projects_out(c):
            n += 2 * nq * heads * dv * cout
        return n

    def pattern(self, x: Shape) -> str:
        parts = ["global"]
        if self.q_stride > 1:
            parts.append(f"q stride {self.q_stride}")
        if self.kv_stride > 1:
            parts.append(f"kv stride {self.kv_stride}")
        return ", ".join(parts)

    def build(self, x: Shape):
        from .modules.conv_attention import ConvAttention

        c, h, w = x.dims
        heads, dk, dv, cout = self.widths(x)
        return ConvAttention(
            dim=c, dim_out=cout, heads=heads, dim_head=dk, dim_value=dv, proj=self.proj,
            proj_kernel=self.proj_kernel, q_stride=self.q_stride, kv_stride=self.kv_stride,
            qkv_bias=self.qkv_bias, out_bias=self.out_bias, project_out=self.projects_out(c),
            attn_dropout=self.attn_dropout, dropout=self.dropout,
            pos_bias_map=(h, w) if self.pos_bias != "none" else None, out_act=self.out_act,
            out_norm=self.out_norm, pos_bias=self.pos_bias, qkv_layout=self.qkv_layout, **self.mixer_kwargs())
