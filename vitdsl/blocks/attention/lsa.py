"""``lsa-attn``: locality self-attention (Lee et al., 2021), global attention with a learned temperature
and no attention to oneself."""
from __future__ import annotations

from typing import Literal

from pydantic import Field

from ..base import register
from ..shape import Shape
from .core import Numerics


@register
class LsaAttn(Numerics):
    """Global attention that sharpens itself: a learned temperature and a mask on each token's own
    key (locality self-attention, Lee, Lee and Song, 2021: "Vision Transformer for Small-Size
    Datasets"; vit-pytorch's ``vit_for_small_dataset``). Both are on by default, as in the paper."""

    block = "lsa-attn"
    capabilities = frozenset({"attention"})
    takes = ("tokens",)
    family = "attention"
    on_padding = "keep"  # padded keys are masked, as in global-attn

    temperature: Literal["fixed", "learned"] = Field(
        "learned", description="learned: logits scaled by exp(t), t one learned scalar initialised to "
                               "log(dim_head^-0.5); fixed: by dim_head^-0.5.")
    mask_self: bool = Field(True, description="Mask each token's attention to itself (the diagonal).")

    def infer(self, x: Shape) -> Shape:
        self.geometry(x.features)
        return x

    def count_params(self, x: Shape) -> int:
        return self.attention_params(x.features, 1 if self.temperature == "learned" else 0)

    def flops(self, x: Shape) -> int:
        n, d = x.dims
        return self.attention_flops(n, n, d)

    def pattern(self, x: Shape) -> str:
        return "global" + self.pattern_extras()

    def part_params(self, part: str, x: Shape) -> int | None:
        return self.attention_parts(x.features).get(part)

    def build(self, x: Shape):
        from ..modules.attention import LocalitySelfAttention

        return LocalitySelfAttention(self.temperature, self.mask_self, **self.attention_kwargs(x.features))
