"""``local-attn``: attention within windows of a feature map (block or grid), with a relative position
bias; and RegionViT's regional-to-local attention on tokens led by region tokens."""
from __future__ import annotations

from typing import Literal

from pydantic import Field, PositiveInt, model_validator

from ..base import linear_params, need, register, window_hint
from ..shape import Shape
from .core import DIM_VALUE, VALUE_CONV, Numerics, check_value_conv, value_conv_cost
from .windows import Windows


@register
class LocalAttn(Windows, Numerics):
    """Self-attention within windows of a feature map.

    ``partition: block`` attends within non-overlapping w×w windows (Swin/MaxViT block attention);
    ``partition: grid`` attends within a w×w grid of tokens spread evenly over the whole map (MaxViT
    grid attention: a sparse, global mix). Takes and gives a feature map (C, H, W). The position bias
    is a learned table per head (Swin/MaxViT), or ``dynamic``: a small MLP of the offset, so it fits any
    window (CrossFormer; its short- and long-distance attention are block and grid).

    With ``region_tokens`` it takes tokens instead: one region token per window leading the patch
    tokens, as ``merge: sequence`` joins a region map in front of a patch grid (RegionViT). The region
    tokens first attend among themselves (no position bias), then each window attends together with
    its region token (which gets no position bias either); both steps use this block's weights. The
    windows are the patch grid divided by the region grid.
    """

    block = "local-attn"
    capabilities = frozenset({"attention"})
    takes = ("image", "tokens")
    family = "attention"

    rel_pos_bias: Literal["table", "dynamic", "none"] = Field(
        "table", description="Relative position bias added to the logits: table = a learned (2w-1)² × heads "
                             "table (Swin/MaxViT); dynamic = an MLP of the offset (Δrow, Δcol) → one bias shared "
                             "by all heads (CrossFormer's dynamic position bias: Linear(2→m), then three times "
                             "LayerNorm → ReLU → Linear, the last to 1; m = bias_hidden); none.")
    bias_hidden: PositiveInt | None = Field(None, description="rel_pos_bias: dynamic — width of the bias MLP; "
                                            "width // 4 when unset (CrossFormer).")
    bias_index: Literal["exact", "vit-pytorch"] = Field(
        "exact", description="rel_pos_bias: dynamic — exact: each query/key pair gets the MLP of its own offset; "
                             "vit-pytorch: CrossFormer's quirk in vit-pytorch, which evaluates the MLP on the "
                             "offsets [-w, w]² (row stride 2w+1) but reads it at (Δrow+w-1)·(2w-1) + (Δcol+w-1), "
                             "so most pairs get another offset's bias (needed for its weights).")
    region_tokens: bool = Field(False, description="Take tokens whose leading special tokens are one region token "
                                "per window, on their own grid (merge: sequence of a region map and a patch "
                                "grid): region tokens attend among themselves, then each window with its region "
                                "token, with shared weights (RegionViT's regional-to-local attention).")
    rel_pos_index: Literal["row-major", "col-major"] = Field(
        "row-major", description="How a relative offset indexes the bias table: row-major = "
                                 "(Δrow + h−1)·(2w−1) + (Δcol + w−1); col-major = (Δrow + h−1) + (Δcol + w−1)·(2h−1) "
                                 "(RegionViT's transposed index).")
    dim_value: PositiveInt | None = Field(None, description=DIM_VALUE)
    value_conv: PositiveInt | None = Field(None, description=VALUE_CONV + " It sees across window borders.")

    @model_validator(mode="after")
    def _geometry_given(self):
        if self.rel_pos_bias != "dynamic" and {"bias_hidden", "bias_index"} & self.model_fields_set:
            raise ValueError("bias_hidden and bias_index are options of the dynamic bias: set rel_pos_bias: dynamic")
        if self.region_tokens and (self.partition != "block" or self.windows is not None):
            raise ValueError("with region_tokens the region grid sets the windows: partition block, no windows")
        check_value_conv(self.value_conv)
        if self.value_conv is not None and (self.rel_pos_bias == "dynamic" or self.region_tokens
                                            or self.rel_pos_index != "row-major"):
            raise ValueError("value_conv takes the table bias or none, in row-major order, and no region_tokens")
        return self

    def regions(self, x: Shape) -> tuple[tuple[int, int], tuple[int, int]]:
        """(region grid, window size) of tokens led by region tokens, checking that they fit each other."""
        need(self.region_tokens, "local-attn takes tokens only with region_tokens: true (region tokens leading a "
             "patch grid)", "give it a feature map, or join region tokens in front with 'merge: sequence'")
        need(x.grid is not None and len(x.grid) == 2, "local-attn with region_tokens needs tokens on a 2-D patch "
             "grid, but these carry none", "join a region map in front of a patch grid with 'merge: sequence'")
        need(x.prefix_grid is not None and len(x.prefix_grid) == 2 and x.prefix >= 1,
             f"local-attn with region_tokens needs region tokens on a 2-D grid leading the sequence, but the "
             f"{x.prefix} special token(s) here carry no grid",
             "join the region map in front with 'merge: sequence' (from: [region, local])")
        need(x.suffix == 0, f"local-attn with region_tokens works on the patch grid, but {x.suffix} special "
             "token(s) trail the sequence")
        (rh, rw), (h, w) = x.prefix_grid, x.grid
        need(h % rh == 0 and w % rw == 0,
             f"the {rh}×{rw} region tokens do not split the {h}×{w} patch grid into windows "
             f"(the {'height' if h % rh else 'width'} {h if h % rh else w} is no multiple of {rh if h % rh else rw})",
             window_hint(h, w, "region grids"))
        win = (h // rh, w // rw)
        if "window" in self.model_fields_set:
            need(win == (self.window, self.window),
                 f"the {rh}×{rw} region tokens split the {h}×{w} patch grid into {win[0]}×{win[1]} windows, "
                 f"not the {self.window}×{self.window} windows that window: {self.window} says",
                 f"set window: {win[0]} (or leave it out)" + (
                     f", or give the region tokens a {h // self.window}×{w // self.window} grid"
                     if h % self.window == 0 and w % self.window == 0 else "") + "; " + window_hint(h, w))
        return (rh, rw), win

    def window_size(self, x: Shape) -> tuple[int, int]:
        """(window height, window width) on this map, checking that the windows tile it."""
        if x.kind == "tokens" or self.region_tokens:
            need(x.kind == "tokens", "local-attn with region_tokens takes tokens, but a feature map reaches it",
                 "join the region map in front of the patch tokens with 'merge: sequence'")
            return self.regions(x)[1]
        return self.map_window_size(x)

    def infer(self, x: Shape) -> Shape:
        self.window_size(x)
        self.geometry(x.features)
        if self.rel_pos_bias == "dynamic":
            self.bias_width(x.features)
        return x

    def bias_width(self, dim: int) -> int:
        hidden = self.bias_hidden if self.bias_hidden is not None else dim // 4
        need(hidden > 0, f"the dynamic bias MLP of a width-{dim} map would have width {dim} // 4 = 0",
             "set bias_hidden")
        return hidden

    def bias_offsets(self, x: Shape) -> int:
        """How many offsets the dynamic bias MLP is evaluated on."""
        wh, ww = self.window_size(x)
        return (2 * wh + 1) * (2 * ww + 1) if self.bias_index == "vit-pytorch" else (2 * wh - 1) * (2 * ww - 1)

    def value_conv_cost(self, x: Shape) -> tuple[int, int]:
        if self.value_conv is None:
            return 0, 0
        c, h, w = x.dims
        return value_conv_cost(self.value_conv, self.geometry(c)[0] * self.value_width(c), h * w)

    def count_params(self, x: Shape) -> int:
        heads, _ = self.geometry(x.features)
        wh, ww = self.window_size(x)
        bias = 0
        if self.rel_pos_bias == "table":
            bias = (2 * wh - 1) * (2 * ww - 1) * heads
        elif self.rel_pos_bias == "dynamic":  # Linear(2→m), 3 × [LayerNorm, Linear], the last m→1
            m = self.bias_width(x.features)
            bias = linear_params(2, m) + 3 * 2 * m + 2 * linear_params(m, m) + linear_params(m, 1)
        return self.attention_params(x.features, bias + self.value_conv_cost(x)[0])

    def part_params(self, part: str, x: Shape) -> int | None:
        if part == "rel_pos_bias" and self.rel_pos_bias == "table":
            wh, ww = self.window_size(x)
            return (2 * wh - 1) * (2 * ww - 1) * self.geometry(x.features)[0]
        return self.attention_parts(x.features).get(part)

    def flops(self, x: Shape) -> int:
        wh, ww = self.window_size(x)
        if x.kind == "tokens":  # region tokens among themselves, then each window with its region token
            regions, c = x.prefix, x.features
            n = (self.attention_flops(regions, regions, c)
                 + self.attention_flops(regions * (1 + wh * ww), 1 + wh * ww, c))
        else:
            c, h, w = x.dims
            n = self.attention_flops(h * w, wh * ww, c) + self.value_conv_cost(x)[1]
        if self.rel_pos_bias == "dynamic":  # the bias MLP, once per forward
            m = self.bias_width(c)
            n += 2 * self.bias_offsets(x) * (2 * m + 2 * m * m + m)
        return n

    def pattern(self, x: Shape) -> str:
        kind = "window" if self.partition == "block" else "grid"
        wh, ww = self.window_size(x)
        bias = ""
        if self.rel_pos_bias == "dynamic":
            bias = ", dynamic bias" + (" (vit-pytorch index)" if self.bias_index == "vit-pytorch" else "")
        if x.kind == "tokens":
            return (f"regional {wh}×{ww} + {x.prefix} region token{'s' if x.prefix > 1 else ''}" + bias
                    + self.pattern_extras())
        text = f"{kind} {wh}×{ww}" + (" (whole map)" if self.window is None and self.windows is None else "")
        if self.value_conv is not None:
            text += f" + value conv {self.value_conv}×{self.value_conv}"
        return text + bias + self.pattern_extras()

    def build(self, x: Shape):
        from ..modules.attention import LocalAttention, MapAttention, RegionalAttention

        dynamic = self.rel_pos_bias == "dynamic"
        bias = dict(rel_pos_bias=self.rel_pos_bias, rel_pos_index=self.rel_pos_index,
                    bias_hidden=self.bias_width(x.features) if dynamic else None, bias_index=self.bias_index)
        if self.value_conv is not None:
            # The value conv needs the values as one map, so project first and then cut windows;
            # LocalAttention cuts the input once instead, which is faster when nothing needs the map.
            return MapAttention(window=self.window_size(x), partition=self.partition, rel_pos_bias=self.rel_pos_bias,
                                kv_reduction=1, value_conv=self.value_conv, grid=None,
                                **self.attention_kwargs(x.features))
        if x.kind == "tokens":
            return RegionalAttention(regions=self.regions(x)[0], window=self.window_size(x), **bias,
                                     **self.attention_kwargs(x.features))
        return LocalAttention(partition=self.partition, window=self.window_size(x), **bias,
                              **self.attention_kwargs(x.features))
