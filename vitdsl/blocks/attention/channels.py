"""``channel-attn``: XCiT's cross-covariance attention, channels attending to channels."""
from __future__ import annotations

from typing import Literal

from pydantic import Field

from ..base import register
from ..shape import Shape
from .core import AttentionSpec


@register
class ChannelAttn(AttentionSpec):
    """Cross-covariance attention (XCiT, El-Nouby et al., 2021): within each head, channels attend to
    channels. Queries and keys are l2-normalised along the tokens, and the (dim_head × dim_head)
    logits are scaled by a learned per-head temperature t (initialised to 1; by exp(t) in vit-pytorch),
    in place of dim_head^-0.5; the cost grows linearly with the number of tokens. Takes and gives tokens."""

    block = "channel-attn"
    capabilities = frozenset({"attention"})
    takes = ("tokens",)
    family = "attention"

    temperature: Literal["linear", "exp"] = Field(
        "linear", description="How the learned temperature t scales the logits: linear = t, as XCiT's code "
                              "(and timm); exp = exp(t), as vit-pytorch (its compat overlay).")

    def infer(self, x: Shape) -> Shape:
        self.geometry(x.features)
        return x

    def count_params(self, x: Shape) -> int:
        return self.attention_params(x.features, self.geometry(x.features)[0])  # + the temperatures

    def flops(self, x: Shape) -> int:  # (dh × dh) weights per head, each a product over the n tokens
        n, d = x.dims
        heads, dh = self.geometry(d)
        inner = heads * dh
        return 2 * n * d * 3 * inner + 4 * n * dh * inner + (2 * n * inner * d if self.projects_out(d) else 0)

    def pattern(self, x: Shape) -> str:
        return "cross-covariance"

    def part_params(self, part: str, x: Shape) -> int | None:
        return self.attention_parts(x.features).get(part)

    def build(self, x: Shape):
        from ..modules.attention import CrossCovarianceAttention

        return CrossCovarianceAttention(exp=self.temperature == "exp", **self.attention_kwargs(x.features))
