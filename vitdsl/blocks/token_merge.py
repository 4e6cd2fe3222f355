"""Blocks that shorten a token sequence mid-network."""
from __future__ import annotations

from typing import Literal

from pydantic import Field, PositiveInt

from .base import BlockSpec, norm_eps_field, norm_params, register
from .shape import Shape


@register
class TokenMerge(BlockSpec):
    """Merge any number of tokens into a fixed number K: each output token is a softmax-weighted
    average of the (normalised) input tokens, weighted by a learned query.

    ``out = softmax(Q · norm(x)ᵀ · D^-0.5) · norm(x)`` with Q a learned (K, D) table: no projections
    and no residual (the PatchMerger of Renggli et al.). Every input token takes part, special tokens
    included, but not the padding rows that token sampling leaves; the output has no patch grid and no
    special tokens.
    """

    block = "token-merge"
    capabilities = frozenset({"attention"})
    takes = ("tokens",)
    shorthand = "tokens"
    family = "attention"
    on_padding = "drop"

    tokens: PositiveInt = Field(description="K, the number of output tokens (learned queries).")
    norm: Literal["layer", "layer-nobias", "none"] = Field("layer", description="Norm of the input tokens; "
                                                            "the normalised tokens are both keys and values.")
    norm_eps: float | None = norm_eps_field("the input tokens' norm")
    init_std: float = Field(0.02, gt=0, description="Standard deviation of the queries' normal initialisation.")

    def infer(self, x: Shape) -> Shape:
        return Shape.tokens(self.tokens, x.features)

    def count_params(self, x: Shape) -> int:
        return self.tokens * x.features + norm_params(self.norm, x.features)

    def flops(self, x: Shape) -> int:
        n, d = x.dims
        return 4 * self.tokens * n * d

    def pattern(self, x: Shape) -> str:
        return f"{x.dims[0]} → {self.tokens} tokens"

    def build(self, x: Shape):
        from .modules.token_merge import TokenMerge

        return TokenMerge(x.features, self.tokens, self.norm, self.init_std, self.norm_eps)
