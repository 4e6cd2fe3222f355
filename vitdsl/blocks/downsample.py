"""Shrinking a patch grid between stages: a strided (depthwise) convolution on the map, with the
special tokens carried along through a linear map (PiT's pooling layer)."""
from __future__ import annotations

from pydantic import Field, NonNegativeInt, PositiveInt

from .base import BlockSpec, fmt_pair, linear_params, need, register
from .conv import conv_out, conv_params
from .shape import Shape


@register
class Downsample(BlockSpec):
    """Shrink the patch grid of tokens (or a feature map) with a strided convolution.

    Tokens are folded into their grid's map, convolved (depthwise by default, then an optional 1×1
    convolution) and flattened again; the leading special tokens (cls) skip the convolution and go
    through a linear map to the new width instead, and stay in front. On a feature map it is the
    convolution alone.
    """

    block = "downsample"
    takes = ("tokens", "image")
    family = "convolution"

    dim: PositiveInt | None = Field(None, description="Output width; twice the input width when unset.")
    kernel: PositiveInt = Field(3, description="Kernel size of the strided convolution.")
    stride: PositiveInt = Field(2, description="Its stride: the grid shrinks by about this factor.")
    padding: NonNegativeInt | None = Field(None, description="Its zero padding; kernel // 2 when unset.")
    depthwise: bool = Field(True, description="Group the strided convolution by input channel "
                                              "(groups = input width; the output width must be a multiple of it).")
    pointwise: bool = Field(True, description="A 1×1 convolution (output width to output width) after it.")
    bias: bool = Field(True, description="Biases in the convolutions and in the special tokens' linear map.")

    def widths(self, x: Shape) -> tuple[int, int]:
        return x.features, self.dim if self.dim is not None else 2 * x.features

    def grid(self, x: Shape) -> tuple[int, int]:
        if x.kind == "image":
            return x.dims[1], x.dims[2]
        n = x.dims[0]
        need(x.grid is not None and len(x.grid) == 2, "downsample needs tokens that carry a 2-D patch grid, "
             "but these carry none", "downsample tokens that come from patchify")
        need(x.suffix == 0, f"downsample works on the patch grid, but {x.suffix} special token(s) trail the sequence",
             "append the trailing tokens after the last downsample")
        gh, gw = x.grid
        need(n == x.prefix + gh * gw, f"downsample: {n} tokens are not {x.prefix} special token(s) "
             f"plus the {gh}×{gw} patch grid")
        return gh, gw

    def out_grid(self, x: Shape) -> tuple[int, int]:
        cin, cout = self.widths(x)
        need(not self.depthwise or cout % cin == 0, f"a depthwise downsample needs an output width that is a "
             f"multiple of the input width {cin}, got {cout}", "set dim to a multiple, or depthwise: false")
        k, s, p = self.kernel, self.stride, self.pad
        h, w = self.grid(x)
        need(min(h, w) + 2 * p >= k, f"downsample kernel {k} does not fit the {h}×{w} grid padded by {p}",
             "use a smaller kernel or more padding")
        return conv_out(h, k, s, p), conv_out(w, k, s, p)

    @property
    def pad(self) -> int:
        return self.padding if self.padding is not None else self.kernel // 2

    def infer(self, x: Shape) -> Shape:
        oh, ow = self.out_grid(x)
        _, cout = self.widths(x)
        if x.kind == "image":
            return Shape.image(cout, oh, ow)
        return Shape.tokens(x.prefix + oh * ow, cout, grid=(oh, ow), prefix=x.prefix)

    def count_params(self, x: Shape) -> int:
        cin, cout = self.widths(x)
        n = conv_params(cin, cout, self.kernel, cin if self.depthwise else 1, self.bias)
        if self.pointwise:
            n += conv_params(cout, cout, 1, bias=self.bias)
        if x.kind == "tokens" and x.prefix:
            n += linear_params(cin, cout, self.bias)
        return n

    def flops(self, x: Shape) -> int:
        cin, cout = self.widths(x)
        oh, ow = self.out_grid(x)
        group_in = 1 if self.depthwise else cin
        n = 2 * oh * ow * cout * group_in * self.kernel ** 2
        if self.pointwise:
            n += 2 * oh * ow * cout * cout
        if x.kind == "tokens":
            n += 2 * x.prefix * cin * cout
        return n

    def pattern(self, x: Shape) -> str:
        return f"{fmt_pair(self.grid(x))} → {fmt_pair(self.out_grid(x))}"

    def build(self, x: Shape):
        from .modules.downsample import Downsample

        cin, cout = self.widths(x)
        return Downsample(cin, cout, self.kernel, self.stride, self.pad, self.depthwise, self.pointwise, self.bias,
                          prefix=x.prefix if x.kind == "tokens" else 0,
                          grid=self.grid(x) if x.kind == "tokens" else None)
