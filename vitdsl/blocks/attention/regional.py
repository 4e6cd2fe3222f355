"""``region-attn``: RegionViT's regional-to-local attention, on tokens led by one region token per window."""
from __future__ import annotations

from typing import Literal

from pydantic import Field, PositiveInt

from ..base import need, register, window_hint
from ..shape import Shape
from .core import Numerics


@register
class RegionAttn(Numerics):
    """Region tokens attend among themselves, then each window of the patch grid together with its
    region token (RegionViT's regional-to-local attention, Chen et al., 2022).

    Takes tokens led by one region token per window, on a grid of its own, as ``merge: sequence``
    joins a region map in front of a patch grid. The region tokens' step has no position bias; in the
    windows' step the region token gets none either. Both steps use this block's weights. The windows
    are the patch grid divided by the region grid.
    """

    block = "region-attn"
    capabilities = frozenset({"attention"})
    takes = ("tokens",)
    family = "attention"

    window: PositiveInt | None = Field(None, description="The window side the region grid must give (a check: the "
                                       "region grid sets the windows); unset: whatever it gives.")
    rel_pos_bias: Literal["table", "none"] = Field(
        "table", description="Relative position bias of the windows' logits: a learned (2w-1)² × heads table, or none.")
    rel_pos_index: Literal["row-major", "col-major"] = Field(
        "row-major", description="How a relative offset indexes the bias table: row-major = "
                                 "(Δrow + h−1)·(2w−1) + (Δcol + w−1); col-major = (Δrow + h−1) + (Δcol + w−1)·(2h−1) "
                                 "(vit-pytorch's transposed index).")

    def regions(self, x: Shape) -> tuple[tuple[int, int], tuple[int, int]]:
        """(region grid, window size) of tokens led by region tokens, checking that they fit each other."""
        need(x.grid is not None and len(x.grid) == 2, "region-attn needs tokens on a 2-D patch grid, but these "
             "carry none", "join a region map in front of a patch grid with 'merge: sequence'")
        need(x.prefix_grid is not None and len(x.prefix_grid) == 2 and x.prefix >= 1,
             f"region-attn needs region tokens on a 2-D grid leading the sequence, but the {x.prefix} special "
             "token(s) here carry no grid",
             "join the region map in front with 'merge: sequence' (from: [region, local])")
        need(x.suffix == 0,
             f"region-attn works on the patch grid, but {x.suffix} special token(s) trail the sequence")
        (rh, rw), (h, w) = x.prefix_grid, x.grid
        need(h % rh == 0 and w % rw == 0,
             f"the {rh}×{rw} region tokens do not split the {h}×{w} patch grid into windows "
             f"(the {'height' if h % rh else 'width'} {h if h % rh else w} is no multiple of {rh if h % rh else rw})",
             window_hint(h, w, "region grids"))
        win = (h // rh, w // rw)
        if self.window is not None:
            need(win == (self.window, self.window),
                 f"the {rh}×{rw} region tokens split the {h}×{w} patch grid into {win[0]}×{win[1]} windows, "
                 f"not the {self.window}×{self.window} windows that window: {self.window} says",
                 f"set window: {win[0]} (or leave it out)" + (
                     f", or give the region tokens a {h // self.window}×{w // self.window} grid"
                     if h % self.window == 0 and w % self.window == 0 else "") + "; " + window_hint(h, w))
        return (rh, rw), win

    def window_size(self, x: Shape) -> tuple[int, int]:
        return self.regions(x)[1]

    def infer(self, x: Shape) -> Shape:
        self.regions(x)
        self.geometry(x.features)
        return x

    def bias_params(self, x: Shape) -> int:
        wh, ww = self.window_size(x)
        return (2 * wh - 1) * (2 * ww - 1) * self.geometry(x.features)[0] if self.rel_pos_bias == "table" else 0

    def count_params(self, x: Shape) -> int:
        return self.attention_params(x.features, self.bias_params(x))

    def part_params(self, part: str, x: Shape) -> int | None:
        if part == "rel_pos_bias" and self.rel_pos_bias == "table":
            return self.bias_params(x)
        return self.attention_parts(x.features).get(part)

    def flops(self, x: Shape) -> int:  # region tokens among themselves, then each window with its region token
        wh, ww = self.window_size(x)
        regions, c = x.prefix, x.features
        return self.attention_flops(regions, regions, c) + self.attention_flops(regions * (1 + wh * ww), 1 + wh * ww, c)

    def pattern(self, x: Shape) -> str:
        wh, ww = self.window_size(x)
        return f"regional {wh}×{ww} + {x.prefix} region token{'s' if x.prefix > 1 else ''}" + self.pattern_extras()

    def build(self, x: Shape):
        from ..modules.attention import RegionalAttention

        regions, window = self.regions(x)
        return RegionalAttention(regions=regions, window=window, rel_pos_bias=self.rel_pos_bias,
                                 rel_pos_index=self.rel_pos_index, **self.attention_kwargs(x.features))
