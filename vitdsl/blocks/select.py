"""Taking part of a token sequence: its leading special tokens, or its patch tokens."""
from __future__ import annotations

from typing import Literal

from pydantic import Field

from .base import BlockSpec, need, register
from .shape import Shape


@register
class Select(BlockSpec):
    """Keep one part of a token sequence: the leading special tokens, or the patch tokens.

    ``prefix`` gives the special tokens alone, with their own grid when they have one (RegionViT's
    region tokens, joined to the patch tokens by ``merge: sequence``); ``patches`` gives the tokens
    after them (and before any trailing special tokens), with the patch grid. Together they split a
    joined sequence back into its two streams.
    """

    block = "select"
    takes = ("tokens",)
    shorthand = "tokens"
    family = "misc"

    tokens: Literal["prefix", "patches"] = Field(description="prefix: the leading special tokens; patches: "
                                                 "the tokens between the special ones.")

    def span(self, x: Shape) -> tuple[int, int]:
        n = x.dims[0]
        if self.tokens == "prefix":
            need(x.prefix >= 1, "'select: prefix' needs special tokens leading the sequence, but none do",
                 "join a stream in front with 'merge: sequence', or add them with a tokens block")
            return 0, x.prefix
        need(n - x.prefix - x.suffix >= 1, f"'select: patches' finds no patch tokens: all {n} tokens are special")
        return x.prefix, n - x.suffix

    def infer(self, x: Shape) -> Shape:
        start, end = self.span(x)
        if self.tokens == "prefix":
            return Shape.tokens(end, x.features, grid=x.prefix_grid)
        return Shape.tokens(end - start, x.features, grid=x.grid)

    def pattern(self, x: Shape) -> str:
        start, end = self.span(x)
        return f"{self.tokens} {start}–{end - 1}"

    def build(self, x: Shape):
        from .modules.select import Select

        return Select(*self.span(x))
