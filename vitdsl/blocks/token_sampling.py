"""``token-ids``: which input tokens survived adaptive token sampling (``sampling-attn``), whose
padding convention is in ``modules/padded.py``."""
from __future__ import annotations

from .base import BlockSpec, need, register
from .shape import Shape

NEEDS_CLS = "add '- tokens: {cls: 1}' before it"


@register
class TokenIds(BlockSpec):
    """Which tokens are left after token sampling: for each token after the leading special tokens,
    the index it had among the non-special tokens before the first ``sampling-attn`` (with a single
    class token: its patch index), or −1 on padding. Gives integers (B, ≤N − prefix): an output of
    the network (``output: [head, token_ids]``), not features for later blocks."""

    block = "token-ids"
    takes = ("tokens",)
    family = "misc"
    terminal = True
    on_padding = "keep"

    def infer(self, x: Shape) -> Shape:
        need(x.dims[0] > x.prefix, f"'token-ids' has no tokens after the {x.prefix} special token(s)")
        return Shape.vector(x.dims[0] - x.prefix)

    def build(self, x: Shape):
        from .modules.token_sampling import TokenIds

        return TokenIds(x.prefix)
