"""``reduced-attn``: global attention over the positions of a feature map, with keys and values from a
strided convolution (Twins, ScalableViT, PVT) or a convolution of the values."""
from __future__ import annotations

from typing import Literal

from pydantic import Field, PositiveInt, model_validator

from ..base import need, need_fit, register
from ..shape import Shape
from .core import DIM_VALUE, VALUE_CONV, AttentionSpec, check_value_conv, value_conv_cost


@register
class ReducedAttn(AttentionSpec):
    """Global attention over a feature map (C, H, W): every position attends to every position and the
    output is a map again. Queries and keys/values have their own projections (``q``, ``kv``), and
    ``kv_reduction: r`` computes the keys and values with an r×r convolution of stride r, so the
    attention runs over (H/r)·(W/r) keys (ScalableViT's scalable self-attention and Twins' global
    sub-sampled attention as vit-pytorch has them); with ``kv_norm: layer`` the convolution keeps the width
    and a LayerNorm and the kv projection follow it (the spatial reduction of the Twins and PVT papers'
    code, and timm's). Tokens that carry a 2-D patch grid and no special tokens are taken too, through
    their map.
    """

    block = "reduced-attn"
    capabilities = frozenset({"attention"})
    takes = ("image", "tokens")
    family = "attention"

    kv_reduction: PositiveInt = Field(
        1, description="Sub-sample the keys and values: an r×r convolution with stride r (no padding) computes "
                       "them from the map, so attention runs over (H/r)·(W/r) keys; r must divide the map.")
    kv_norm: Literal["none", "layer"] = Field(
        "none", description="kv_reduction > 1 — none: the r×r convolution gives the keys and values (vit-pytorch's "
                            "Twins-SVT and ScalableViT); layer: an r×r convolution from the width to itself, with "
                            "bias, then a LayerNorm (PyTorch's eps 1e-5, as the code has it), then the kv projection "
                            "on the sub-sampled map (Twins' GSA and PCPVT, PVT's spatial reduction). No effect at "
                            "r = 1, where the kv projection reads the map itself.")
    kv_pool: PositiveInt | None = Field(
        None, description="p: keys and values from the map average-pooled to p×p (adaptive), then a 1×1 convolution "
                          "from the width to itself with bias, a LayerNorm (PyTorch's eps 1e-5), a GELU and the kv "
                          "projection, so attention runs over p·p keys whatever the map's size (PVT v2's linear "
                          "spatial-reduction attention, its code's and timm's). Not with kv_reduction > 1.")
    dim_value: PositiveInt | None = Field(None, description=DIM_VALUE)
    value_conv: PositiveInt | None = Field(None, description=VALUE_CONV)

    @model_validator(mode="after")
    def _one_of_the_two(self):
        check_value_conv(self.value_conv)
        if self.value_conv is not None and self.kv_reduction > 1:
            raise ValueError("value_conv adds a convolution of the values at every position, but kv_reduction "
                             f"{self.kv_reduction} sub-samples them: use one of the two")
        if self.kv_pool is not None and (self.kv_reduction > 1 or self.value_conv is not None):
            raise ValueError(f"kv_pool {self.kv_pool} pools the keys and values, so it takes neither kv_reduction "
                             "> 1 nor value_conv: use one of them")
        return self

    def map_size(self, x: Shape) -> tuple[int, int]:
        """(height, width) of the map the block attends over, checking that it takes the options."""
        if x.kind == "image":
            h, w = x.dims[1:]
        else:
            need(x.grid is not None and len(x.grid) == 2, "reduced-attn needs the tokens' 2-D patch grid, but these "
                 "carry none", "place the block where the tokens still carry their grid (after patchify)")
            need(x.prefix == 0 and x.suffix == 0, f"reduced-attn works on the patch grid, but {x.prefix + x.suffix} "
                 "special token(s) are in the sequence", "add the tokens block after this block")
            (h, w), n = x.grid, x.dims[0]
            need(n == h * w, f"{n} tokens do not fill the {h}×{w} patch grid")
        r = self.kv_reduction
        need_fit(h, w, r, f"kv_reduction {r} does not divide", "kv reductions")
        return h, w

    def infer(self, x: Shape) -> Shape:
        self.geometry(x.features)
        self.map_size(x)
        return x

    def normed(self) -> bool:
        """Whether the sub-sampling is a convolution and a LayerNorm before the kv projection."""
        return self.kv_norm == "layer" and self.kv_reduction > 1

    def count_params(self, x: Shape) -> int:
        heads, dk = self.geometry(x.features)
        c, r, inner_v = x.features, self.kv_reduction, heads * self.value_width(x.features)
        if self.kv_pool is not None:  # the 1×1 c→c convolution with its bias, and the LayerNorm
            kv = c * c + 3 * c
        elif self.normed():  # the c→c convolution with its bias, and the LayerNorm
            kv = c * c * r * r + c + 2 * c
        else:  # the r×r kv convolution's weights beyond a 1×1's
            kv = c * (r * r - 1) * (heads * dk + inner_v)
        return self.attention_params(c, kv + value_conv_cost(self.value_conv, inner_v, 0)[0])

    def flops(self, x: Shape) -> int:
        h, w = self.map_size(x)
        r, c = self.kv_reduction, x.features
        heads, dk = self.geometry(c)
        inner_v = heads * self.value_width(c)
        keys = (h // r) * (w // r) if self.kv_pool is None else self.kv_pool ** 2
        n = self.attention_flops(h * w, keys, c) + value_conv_cost(self.value_conv, inner_v, h * w)[1]
        if self.kv_pool is not None:  # the 1×1 convolution on the pooled map; the kv projection reads it only
            n += 2 * keys * c * c - 2 * (h * w - keys) * c * (heads * dk + inner_v)
        elif self.normed():  # the core counts a kv projection at every position; here it reads the keys only
            n += 2 * h * w * c * c - 2 * (h * w - keys) * c * (heads * dk + inner_v)
        return n

    def pattern(self, x: Shape) -> str:
        text = "global"
        if self.kv_reduction > 1:
            h, w = self.map_size(x)
            r = self.kv_reduction
            text += f", kv sub-sampled {r}×{r}" + (" + norm" if self.normed() else "") + f" ({h // r}×{w // r} keys)"
        if self.kv_pool is not None:
            text += f", kv pooled to {self.kv_pool}×{self.kv_pool} + conv, norm, GELU"
        if self.value_conv is not None:
            text += f" + value conv {self.value_conv}×{self.value_conv}"
        return text

    def part_params(self, part: str, x: Shape) -> int | None:
        return self.attention_parts(x.features).get(part)

    def build(self, x: Shape):
        from ..modules.attention import MapAttention

        return MapAttention(window=None, partition="block", rel_pos_bias="none", kv_reduction=self.kv_reduction,
                            kv_norm=self.normed(), value_conv=self.value_conv,
                            kv_pool=self.kv_pool,
                            grid=x.grid if x.kind == "tokens" else None, **self.attention_kwargs(x.features))
