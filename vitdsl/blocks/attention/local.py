"""``local-attn``: attention within windows of a feature map (block or grid), with a relative position
bias. RegionViT's windows with their region tokens are ``region-attn`` (``regional.py``)."""
from __future__ import annotations

import math
from typing import Literal

from pydantic import Field, NonNegativeInt, PositiveInt, model_validator

from ..base import linear_params, need, register
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
    window (CrossFormer; its short- and long-distance attention are block and grid). With ``shift``, the
    block windows are Swin's shifted windows, with their cyclic roll and its attention mask. With ``rope``
    (EVA-02's rotary embedding), a token's position is its row and column inside its window: attention compares
    tokens of one window only, and the rotation depends only on their offset, so this is the map's own RoPE.
    With ``pad``, a map the window does not divide is padded with zeros to a multiple of it (Swin at detection
    and segmentation sizes, timm's Swin at any image size).
    """

    block = "local-attn"
    capabilities = frozenset({"attention"})
    takes = ("image",)
    family = "attention"
    takes_rope = True

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
    table_layout: Literal["offsets-first", "heads-first"] = Field(
        "offsets-first", description="rel_pos_bias: table — how the table's weights are laid out: offsets-first = "
                                     "(2w-1)² rows of heads, read at query - key (Swin, vit-pytorch); heads-first = "
                                     "heads × (2w-1) × (2w-1), read at key - query (MaxViT's TensorFlow code, timm's "
                                     "RelPosBiasTf). The same bias either way, for weights stored either way.")
    dim_value: PositiveInt | None = Field(None, description=DIM_VALUE)
    value_conv: PositiveInt | None = Field(None, description=VALUE_CONV + " It sees across window borders.")
    head_merge: Literal["heads", "channels"] = Field(
        "heads", description="How the heads' outputs join before the output projection: heads = head after head, "
                             "(h d); channels = interleaved, (d h): channel j of head i at j·heads + i, as timm's "
                             "NesT joins them (its output projection's columns in that order: the same function "
                             "as heads with those columns permuted).")

    shift: NonNegativeInt = Field(
        0, description="partition: block — Swin's shifted windows: the map is rolled this many tokens up and left "
                       "before the windows are cut and back after, and within a window tokens that came from "
                       "different sides of the roll's seam do not attend to each other (the same attention as Swin's "
                       "additive -100 mask, to float precision). Along a side the window covers whole, there is "
                       "nothing to shift: 0 there, as in Swin. Swin alternates 0 and window // 2 block by block.")
    pad: Literal["none", "after-roll", "before-roll"] = Field(
        "none", description="partition: block — a map the window does not divide: none = refused; otherwise it is "
                            "padded at the bottom and right with zero tokens (after the norm, so they reach the "
                            "projections as zeros; they are keys like any other, unmasked) to a multiple of the "
                            "window, and cropped after. after-roll = the map is rolled, then padded, and a side no "
                            "longer than the window gets a window its own length and no shift (timm's "
                            "SwinTransformerBlock); before-roll = padded, then rolled, the window and shift kept "
                            "whatever the map's size (Swin's detection and segmentation code). Either way the "
                            "shift's mask is that of the padded map, as both codes compute it, so after-roll lets "
                            "the few tokens next to the seam on a padded side attend across it, as timm does.")

    @model_validator(mode="after")
    def _geometry_given(self):
        if self.shift and self.partition != "block":
            raise ValueError("shift moves block windows: set partition: block, or drop shift")
        if self.shift and self.value_conv is not None:
            raise ValueError("shift takes no value_conv")
        if self.rel_pos_bias != "dynamic" and {"bias_hidden", "bias_index"} & self.model_fields_set:
            raise ValueError("bias_hidden and bias_index are options of the dynamic bias: set rel_pos_bias: dynamic")
        if self.rel_pos_bias != "table" and "table_layout" in self.model_fields_set:
            raise ValueError("table_layout is an option of the table bias: set rel_pos_bias: table")
        if self.pad != "none" and (self.partition != "block" or self.window is None or self.windows is not None):
            raise ValueError("pad fills the map up to a multiple of block windows: set partition: block and a "
                             "window, or drop pad")
        check_value_conv(self.value_conv)
        if self.value_conv is not None and (self.rope != "none" or self.pad != "none"):
            raise ValueError("value_conv takes no rope and no pad")
        if self.value_conv is not None and self.rel_pos_bias == "dynamic":
            raise ValueError("value_conv takes the table bias or none")
        if self.value_conv is not None and self.table_layout != "offsets-first":
            raise ValueError("value_conv takes the offsets-first table only")
        if self.value_conv is not None and self.head_merge != "heads":
            raise ValueError("value_conv joins the heads head after head: drop head_merge")
        return self

    def window_size(self, x: Shape) -> tuple[int, int]:
        """(window height, window width) on this map, checking that the windows tile it (unless padded)."""
        if self.pad == "after-roll":  # a side shorter than the window is one window (timm)
            return min(x.dims[1], self.window), min(x.dims[2], self.window)
        if self.pad == "before-roll":
            return self.window, self.window
        return self.map_window_size(x)

    def padded_size(self, x: Shape) -> tuple[int, int]:
        """(height, width) of the map the windows are cut from: the map's own, or padded to their multiple."""
        (wh, ww), (h, w) = self.window_size(x), x.dims[1:]
        return h + (-h) % wh, w + (-w) % ww

    def shift_size(self, x: Shape) -> tuple[int, int]:
        """(rows, columns) the map is rolled by: the shift, or 0 along a side the window covers."""
        (wh, ww), (h, w) = self.window_size(x), x.dims[1:]
        side = (self.window,) * 2 if self.pad != "none" else (wh, ww)  # padded: as asked, before the clamp
        need(self.shift < min(side), f"shift {self.shift} must be smaller than the {side[0]}×{side[1]} window",
             "Swin shifts by window // 2")
        if self.pad == "before-roll":  # Swin's detection code shifts whatever the map's size
            return self.shift, self.shift
        return (self.shift if h > wh else 0), (self.shift if w > ww else 0)

    def window_rope(self, x: Shape) -> dict:
        """The rotation's arguments: the window is the grid (positions inside it), no special tokens."""
        if self.rope == "none":
            return {}
        dim_head = self.geometry(x.features)[1]
        need(dim_head % 4 == 0, f"rope splits each head into row and column pairs, so dim_head must be a "
             f"multiple of 4, got {dim_head}", "choose heads so that width / heads divides by 4")
        need(self.rope == "axial", "rope: mixed learns one set of frequencies over a whole grid; local-attn takes "
             "rope: axial", "use rope: axial in windows")
        first = {"columns_first": True} if self.rope_first == "column" else {}
        return dict(rope=dict(grid=self.window_size(x), prefix=0, ref=self.rope_ref, theta=self.rope_theta, **first))

    def infer(self, x: Shape) -> Shape:
        self.shift_size(x)
        self.geometry(x.features)
        self.window_rope(x)
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
        c = x.features
        n = self.attention_flops(math.prod(self.padded_size(x)), wh * ww, c) + self.value_conv_cost(x)[1]
        if self.rel_pos_bias == "dynamic":  # the bias MLP, once per forward
            m = self.bias_width(c)
            n += 2 * self.bias_offsets(x) * (2 * m + 2 * m * m + m)
        return n

    def pattern(self, x: Shape) -> str:
        kind = "window" if self.partition == "block" else "grid"
        kind = "shifted " + kind if any(self.shift_size(x)) else kind
        (wh, ww), (h, w) = self.window_size(x), x.dims[1:]
        bias = ""
        if self.rel_pos_bias == "dynamic":
            bias = ", dynamic bias" + (" (vit-pytorch index)" if self.bias_index == "vit-pytorch" else "")
        text = f"{kind} {wh}×{ww}" + (" (whole map)" if self.window is None and self.windows is None else "")
        if self.padded_size(x) != (h, w):
            text += f", padded {h}×{w}→{'×'.join(map(str, self.padded_size(x)))}"
        if self.value_conv is not None:
            text += f" + value conv {self.value_conv}×{self.value_conv}"
        if self.head_merge == "channels":
            text += ", heads interleaved"
        return text + bias + self.pattern_extras()

    def build(self, x: Shape):
        from ..modules.attention import LocalAttention, MapAttention

        dynamic = self.rel_pos_bias == "dynamic"
        bias = dict(rel_pos_bias=self.rel_pos_bias, table_layout=self.table_layout,
                    bias_hidden=self.bias_width(x.features) if dynamic else None, bias_index=self.bias_index)
        if self.value_conv is not None:
            # The value conv needs the values as one map, so project first and then cut windows;
            # LocalAttention cuts the input once instead, which is faster when nothing needs the map.
            return MapAttention(window=self.window_size(x), partition=self.partition, rel_pos_bias=self.rel_pos_bias,
                                kv_reduction=1, value_conv=self.value_conv, grid=None,
                                **self.attention_kwargs(x.features))
        return LocalAttention(partition=self.partition, window=self.window_size(x), **bias, head_merge=self.head_merge,
                              shift=self.shift_size(x), map_size=x.dims[1:], pad=self.pad, **self.window_rope(x),
                              **self.attention_kwargs(x.features))
