"""Blocks that turn pixels into tokens and give tokens their positions: patchify, pos-embed, tokens."""
from __future__ import annotations

from typing import Literal

from pydantic import Field, PositiveInt

from .base import BlockSpec, divisors_hint, fmt_pair, linear_params, need, norm_params, pair, register
from .shape import Shape

PatchNorm = Literal["none", "layer", "layer-nobias"]


@register
class Patchify(BlockSpec):
    """Cut an image into non-overlapping patches and project each patch vector to a token.

    Output: tokens in row-major patch order, with the patch grid recorded for later blocks. Without
    ``dim`` there is no projection: ``patch: 1`` then just flattens a feature map into one token per
    position (``b c h w -> b (h w) c``, as CCT's tokenizer).
    """

    block = "patchify"
    takes = ("image",)
    family = "embedding"

    patch: PositiveInt | tuple[PositiveInt, PositiveInt] = Field(
        description="Patch size, one number or [height, width].")
    dim: PositiveInt | None = Field(None, description="Token width after the projection; no projection when "
                                    "unset (the token is the raw patch vector).")
    order: Literal["hwc", "chw"] = Field(
        "hwc", description="Order of a patch's values before the projection: hwc = (p1 p2 c) as in "
                           "ViT/timm-style rearranges, chw = (c p1 p2) as nn.Unfold gives.")
    pre_norm: PatchNorm = Field("none", description="Norm of the raw patch vector before the projection.")
    post_norm: PatchNorm = Field("none", description="Norm of the token after the projection.")
    bias: bool = Field(True, description="Bias in the projection.")

    def grid(self, x: Shape) -> tuple[int, int]:
        ph, pw = pair(self.patch)
        _, h, w = x.dims
        need(h % ph == 0, f"image height {h} is not divisible by the patch height {ph}",
             divisors_hint(h, ph, "heights"))
        need(w % pw == 0, f"image width {w} is not divisible by the patch width {pw}",
             divisors_hint(w, pw, "widths"))
        return h // ph, w // pw

    def patch_dim(self, x: Shape) -> int:
        ph, pw = pair(self.patch)
        return x.features * ph * pw

    def out_dim(self, x: Shape) -> int:
        return self.dim if self.dim is not None else self.patch_dim(x)

    def infer(self, x: Shape) -> Shape:
        gh, gw = self.grid(x)
        return Shape.tokens(gh * gw, self.out_dim(x), grid=(gh, gw))

    def count_params(self, x: Shape) -> int:
        p, d = self.patch_dim(x), self.out_dim(x)
        proj = linear_params(p, d, self.bias) if self.dim is not None else 0
        return norm_params(self.pre_norm, p) + proj + norm_params(self.post_norm, d)

    def flops(self, x: Shape) -> int:
        if self.dim is None:
            return 0
        gh, gw = self.grid(x)
        return 2 * gh * gw * self.patch_dim(x) * self.dim

    def pattern(self, x: Shape) -> str:
        return f"patch {fmt_pair(pair(self.patch))}"

    def build(self, x: Shape):
        from .modules.embed import Patchify

        return Patchify(x.features, pair(self.patch), self.dim, self.order, self.pre_norm, self.post_norm, self.bias)


@register
class PosEmbed(BlockSpec):
    """Add position information to tokens: a learned table, or fixed sine-cosine features.

    ``learned`` covers every token that reaches it (put it after ``tokens`` to give the cls token a
    position too, as ViT does). ``sincos2d`` needs the patch grid and no leading special tokens; it is
    computed, not learned, and is not part of the state_dict. ``sincos1d`` is the 1-D sinusoid of
    the sequence position (CCT's 'sine'), covering every token; it is kept in the state_dict, as a
    frozen parameter or a buffer (``store``). ``none`` adds nothing (only the dropout runs), so a
    parameter can switch positions off.
    """

    block = "pos-embed"
    takes = ("tokens",)
    shorthand = "kind"
    family = "embedding"

    kind: Literal["learned", "sincos2d", "sincos1d", "none"] = Field(
        "learned", description="learned: a trained (N, D) table covering every token; "
                               "sincos2d: fixed sine-cosine features of the patch row and column; "
                               "sincos1d: fixed sin/cos of the token index (even features sin, odd cos); "
                               "none: no positions.")
    temperature: float = Field(10000.0, gt=0, description="sincos2d, sincos1d: base of the frequencies.")
    init_std: float = Field(0.02, gt=0, description="learned: standard deviation of the normal initialisation.")
    dropout: float = Field(0.0, ge=0, lt=1, description="Dropout on the tokens after the addition.")
    init: Literal["normal", "trunc_normal"] = Field(
        "normal", description="learned: initial distribution, normal or truncated normal (at ±2, as "
                              "torch's trunc_normal_), with standard deviation init_std.")
    store: Literal["parameter", "buffer"] = Field(
        "parameter", description="sincos1d: keep the table as a frozen parameter (counted among the "
                                 "parameters, as CCT) or as a buffer (CCT-3D).")

    def infer(self, x: Shape) -> Shape:
        if self.kind == "sincos2d":
            need(x.grid is not None and len(x.grid) == 2,
                 "sincos2d positions need tokens that come from a 2-D patch grid",
                 "place pos-embed right after patchify")
            need(x.prefix == 0, f"sincos2d positions cover patch tokens only, but {x.prefix} special "
                 "token(s) lead the sequence", "add the tokens block after pos-embed")
            need(x.features % 4 == 0, f"sincos2d needs a token width divisible by 4, got {x.features}")
        return x

    def count_params(self, x: Shape) -> int:
        frozen = self.kind == "sincos1d" and self.store == "parameter"
        return x.numel if self.kind == "learned" or frozen else 0

    def pattern(self, x: Shape) -> str:
        return self.kind

    def build(self, x: Shape):
        from .modules.embed import LearnedPositions, NoPositions, SinCos1dPositions, SinCos2dPositions

        if self.kind == "learned":
            return LearnedPositions(*x.dims, init_std=self.init_std, dropout=self.dropout, init=self.init)
        if self.kind == "sincos1d":
            return SinCos1dPositions(*x.dims, self.temperature, self.store, dropout=self.dropout)
        if self.kind == "none":
            return NoPositions(self.dropout)
        return SinCos2dPositions(x.grid, x.features, self.temperature, dropout=self.dropout)


@register
class Tokens(BlockSpec):
    """Prepend learned special tokens (class tokens) to the sequence."""

    block = "tokens"
    takes = ("tokens",)
    shorthand = "cls"
    family = "embedding"

    cls: PositiveInt = Field(1, description="How many learned class tokens to prepend.")
    init_std: float = Field(1.0, gt=0, description="Standard deviation of the normal initialisation.")

    def infer(self, x: Shape) -> Shape:
        n, d = x.dims
        return Shape.tokens(n + self.cls, d, grid=x.grid, prefix=x.prefix + self.cls)

    def count_params(self, x: Shape) -> int:
        return self.cls * x.features

    def pattern(self, x: Shape) -> str:
        return f"+{self.cls} cls"

    def build(self, x: Shape):
        from .modules.embed import ClassTokens

        return ClassTokens(self.cls, x.features, self.init_std)
