"""Depthwise convolutions as a residual mixer over the token grid (XCiT's local patch interaction,
Twins' position-encoding generator)."""
from __future__ import annotations

from typing import Literal

from pydantic import Field, PositiveInt, model_validator

from .base import Activation, MixerSpec, need, register
from .shape import Shape


@register
class DWConv(MixerSpec):
    """Depthwise k×k convolutions over the patch grid (or feature map), as a residual mixer.

    ``convs: 2`` is XCiT's local patch interaction (norm → dwconv → GELU → BatchNorm → dwconv, or
    BatchNorm before GELU with ``mid_order: norm-act``, as vit-pytorch has it);
    ``convs: 1`` with ``norm: none`` is a position-encoding generator (x + dwconv(x)). Tokens must
    carry their grid and no special tokens.
    """

    block = "dwconv"
    takes = ("tokens", "image")
    family = "convolution"

    kernel: PositiveInt = Field(3, description="Kernel size (odd: padding keeps the grid).")
    convs: Literal[1, 2] = Field(2, description="One depthwise convolution, or two with a norm and an "
                                 "activation between them.")
    mid_norm: Literal["batch", "none"] = Field("batch", description="Norm between the two convolutions.")
    act: Activation | Literal["none"] = Field("gelu", description="Activation between the two convolutions.")
    mid_order: Literal["act-norm", "norm-act"] = Field(
        "act-norm", description="Between the two convolutions: activation then norm (XCiT's code, timm) or norm "
                                "then activation (vit-pytorch, its compat overlay).")
    bias: bool = Field(True, description="Bias in each convolution.")
    special: Literal["refuse", "pass"] = Field(
        "refuse", description="Leading special tokens: refuse them (an error), or pass them through unchanged "
                              "while the patch tokens are convolved (a PEG after RegionViT's region tokens).")

    @model_validator(mode="after")
    def _odd(self):
        if self.kernel % 2 == 0:
            raise ValueError(f"kernel must be odd so that padding keeps the grid, got {self.kernel}")
        return self

    def positions(self, x: Shape) -> int:
        if x.kind == "tokens":
            need(x.grid is not None and len(x.grid) == 2, "dwconv needs tokens that come from a 2-D patch grid",
                 "place it after patchify, before any block that loses the grid")
            need(x.prefix == 0 or self.special == "pass", f"dwconv works on the patch grid, but {x.prefix} special "
                 "token(s) lead the sequence", "add the tokens block after the convolutional blocks, or set "
                 "special: pass")
            need(x.suffix == 0, f"dwconv works on the patch grid, but {x.suffix} special token(s) trail the sequence",
                 "append the trailing tokens after the convolutional blocks")
            gh, gw = x.grid
            need(x.dims[0] == x.prefix + gh * gw, f"dwconv: {x.dims[0]} tokens are not {x.prefix} special token(s) "
                 f"plus the {gh}×{gw} patch grid")
            return gh * gw
        return x.dims[1] * x.dims[2]

    def infer(self, x: Shape) -> Shape:
        self.positions(x)
        return x

    def count_params(self, x: Shape) -> int:
        c = x.features
        conv = c * self.kernel ** 2 + (c if self.bias else 0)
        mid = 2 * c if self.convs == 2 and self.mid_norm == "batch" else 0
        return self.convs * conv + mid + self.mixer_params(c)

    def flops(self, x: Shape) -> int:
        return self.convs * 2 * self.positions(x) * x.features * self.kernel ** 2

    def build(self, x: Shape):
        from .modules.dwconv import DWConv

        grid = x.grid if x.kind == "tokens" else None
        return DWConv(x.features, self.kernel, self.convs, self.mid_norm, self.act, self.bias, grid, self.mid_order,
                      skip=x.prefix if x.kind == "tokens" else 0, **self.mixer_kwargs())
