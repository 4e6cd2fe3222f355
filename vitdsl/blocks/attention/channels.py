"""``channel-attn``: channels attending to channels within each head: XCiT's cross-covariance attention and
DaViT's channel group attention."""
from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from ..base import register
from ..shape import Shape
from .core import AttentionSpec


@register
class ChannelAttn(AttentionSpec):
    """Within each head (a group of dim_head channels), channels attend to channels: a (dim_head × dim_head)
    softmax of products over the tokens, so the cost grows linearly with the number of tokens. ``form`` picks
    the paper: XCiT's cross-covariance attention (El-Nouby et al., 2021), or DaViT's channel group attention
    (Ding et al., 2022; Florence-2's form as v2). Takes and gives tokens, or a feature map (C, H, W), whose
    positions are the tokens."""

    block = "channel-attn"
    capabilities = frozenset({"attention"})
    takes = ("tokens", "image")
    family = "attention"

    form: Literal["cross-covariance", "channel-groups", "channel-groups-v2"] = Field(
        "cross-covariance", description="cross-covariance (XCiT): queries and keys l2-normalised along the tokens, "
                                        "the logits qᵀk scaled by a learned per-head temperature t (initialised to "
                                        "1) in place of dim_head^-0.5, applied to the values. channel-groups "
                                        "(DaViT's code, timm's ChannelAttention): the logits kᵀv · dim_head^-0.5, "
                                        "applied to the queries, no norm and no temperature. channel-groups-v2 "
                                        "(Florence-2's DaViT, timm's ChannelAttentionV2): the logits qᵀk · n^-0.5, "
                                        "n the number of tokens, applied to the values.")
    temperature: Literal["linear", "exp"] = Field(
        "linear", description="form: cross-covariance — how the learned temperature t scales the logits: linear = "
                              "t, as XCiT's code (and timm); exp = exp(t), as vit-pytorch (its compat overlay).")

    @model_validator(mode="after")
    def _temperature_here(self):
        if self.form != "cross-covariance" and "temperature" in self.model_fields_set:
            raise ValueError(f"temperature scales cross-covariance logits; form {self.form} has none: drop "
                             "temperature, or set form: cross-covariance")
        return self

    def tokens(self, x: Shape) -> int:
        return x.dims[1] * x.dims[2] if x.kind == "image" else x.dims[0]

    def infer(self, x: Shape) -> Shape:
        self.geometry(x.features)
        return x

    def count_params(self, x: Shape) -> int:
        temperatures = self.geometry(x.features)[0] if self.form == "cross-covariance" else 0
        return self.attention_params(x.features, temperatures)

    def flops(self, x: Shape) -> int:  # (dh × dh) weights per head, each a product over the n tokens
        n, d = self.tokens(x), x.features
        heads, dh = self.geometry(d)
        inner = heads * dh
        return 2 * n * d * 3 * inner + 4 * n * dh * inner + (2 * n * inner * d if self.projects_out(d) else 0)

    def pattern(self, x: Shape) -> str:
        return {"cross-covariance": "cross-covariance", "channel-groups": "channel groups",
                "channel-groups-v2": "channel groups, 1/√tokens"}[self.form]

    def part_params(self, part: str, x: Shape) -> int | None:
        return self.attention_parts(x.features).get(part)

    def build(self, x: Shape):
        from ..modules.attention import CrossCovarianceAttention

        return CrossCovarianceAttention(exp=self.temperature == "exp", form=self.form, map=x.kind == "image",
                                        **self.attention_kwargs(x.features))
