"""``tokens``: learned special tokens (class, distillation) joining the sequence."""
from __future__ import annotations

from typing import Literal

from pydantic import Field, PositiveInt

from .base import BlockSpec, register
from .shape import Shape


@register
class Tokens(BlockSpec):
    """Prepend learned special tokens (class tokens) to the sequence, or append them (``position: last``,
    e.g. DeiT's distillation token, appended after the positions so that it gets none)."""

    block = "tokens"
    capabilities = frozenset({"special-tokens"})
    shorthand = "cls"
    family = "embedding"

    cls: PositiveInt = Field(1, description="How many learned class tokens to prepend.")
    init_std: float = Field(0.02, gt=0, description="Standard deviation of the normal initialisation (DeiT's).")
    position: Literal["first", "last"] = Field(
        "first", description="first: prepend (leading special tokens); last: append (trailing special tokens, "
                             "which blocks that need the patch grid refuse and 'pool: last' reads).")

    def infer(self, x: Shape) -> Shape:
        n, d = x.dims
        if self.position == "last":
            return Shape.tokens(n + self.cls, d, grid=x.grid, prefix=x.prefix, suffix=x.suffix + self.cls)
        return Shape.tokens(n + self.cls, d, grid=x.grid, prefix=x.prefix + self.cls, suffix=x.suffix)

    def count_params(self, x: Shape) -> int:
        return self.cls * x.features

    def pattern(self, x: Shape) -> str:
        return f"+{self.cls} cls" + (" (last)" if self.position == "last" else "")

    def build(self, x: Shape):
        from .modules.embed import ClassTokens

        return ClassTokens(self.cls, x.features, self.init_std, append=self.position == "last")
