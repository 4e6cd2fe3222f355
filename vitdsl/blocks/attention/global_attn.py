"""``global-attn``: every token attends to every token; on packed tokens within each image, and across
groups (ViViT). The paper-specific forms of global attention are blocks of their own: ``memory-attn``,
``sampling-attn``, ``channel-attn`` and ``reduced-attn``."""
from __future__ import annotations

from typing import Literal

from pydantic import Field

from ..base import need, register
from ..shape import Shape
from .core import Numerics


@register
class GlobalAttn(Numerics):
    """Multi-head self-attention in which every token attends to every token.

    On ``packed`` tokens (NaViT: several images packed into one sequence) a token attends only to
    the tokens of its own image, never to other images or padding. After token sampling
    (``sampling-attn``) the padding rows are masked out of the keys.

    Global attention as one paper changes it is a block of its own: learned memories and task tokens
    (``memory-attn``), adaptive token sampling (``sampling-attn``), cross-covariance attention over
    channels (``channel-attn``) and attention over a feature map with sub-sampled keys and values
    (``reduced-attn``).
    """

    block = "global-attn"
    capabilities = frozenset({"attention", "context"})
    takes = ("tokens", "packed")
    family = "attention"
    takes_rope = True

    over: Literal["tokens", "groups"] = Field(
        "tokens", description="tokens: tokens attend to tokens; groups: each token attends to the tokens at its own "
                              "position in every group (ViViT's temporal attention across frames).")
    rel_pos_bias: Literal["none", "table"] = Field(
        "none", description="Relative position bias added to the logits: table = a learned table of heads per "
                            "offset between patches of the h×w grid, (2h-1)·(2w-1) rows read at query - key "
                            "(row-major), and with a leading cls token three rows more, for the cls token as "
                            "query, as key, and to itself (BEiT; zero at first); none.")

    def takes_padding(self) -> str | None:
        return "keep" if self.over == "tokens" else None  # the token path masks padded keys

    def infer(self, x: Shape) -> Shape:
        self.geometry(x.features)
        if x.kind == "packed":
            need(self.over == "tokens", "on packed tokens global-attn attends within each image, not over: groups",
                 "attend over unpacked tokens")
        elif self.over == "groups":
            need(x.groups > 1, "over: groups attends across groups, but these tokens hold none",
                 "make groups first (patchify on a volume with frames: groups)")
        if self.rel_pos_bias == "table":
            need(x.kind == "tokens" and self.over == "tokens" and x.grid is not None and len(x.grid) == 2,
                 "rel_pos_bias: table needs tokens of a 2-D patch grid, attended over tokens",
                 "patchify an image before this block")
            need(x.prefix <= 1 and x.suffix == 0, f"rel_pos_bias: table has rows for one leading cls token at "
                 f"most, but {x.prefix} lead and {x.suffix} trail the patch tokens", "use one cls token")
        need(self.rope == "none" or (x.kind == "tokens" and self.over == "tokens"),
             "rope rotates tokens over their patch grid: not on packed tokens or across groups", "drop rope here")
        self.rope_kwargs(x)
        return x

    def row_rule(self, x: Shape) -> str | None:
        # the queries of the first rows attend to every key (TokenAttention's rows=); rotary turns only patch rows
        plain = self.over == "tokens" and self.rel_pos_bias == "none" and self.norm_type != "batch"
        return "cut" if x.kind == "tokens" and plain else None

    def bias_rows(self, x: Shape) -> int:
        """Rows of the relative position table (0 without one)."""
        if self.rel_pos_bias == "none":
            return 0
        h, w = x.grid
        return (2 * h - 1) * (2 * w - 1) + (3 if x.prefix else 0)

    def count_params(self, x: Shape) -> int:
        return self.attention_params(x.features, self.bias_rows(x) * self.geometry(x.features)[0])

    def flops(self, x: Shape) -> int:
        n, d = x.dims
        if self.over == "groups":  # n sequences of G tokens per sample, counted here per group
            return n * self.attention_flops(x.groups, x.groups, d) // x.groups
        return self.attention_flops(n, n, d)

    def pattern(self, x: Shape) -> str:
        if x.kind == "packed":
            return "per image" + self.pattern_extras()
        if self.over == "groups":
            return f"across {x.groups} groups" + self.pattern_extras()
        return "global" + (", rel-pos table" if self.rel_pos_bias == "table" else "") + self.pattern_extras()

    def part_params(self, part: str, x: Shape) -> int | None:
        if part == "rel_pos_bias" and self.rel_pos_bias == "table":
            return self.bias_rows(x) * self.geometry(x.features)[0]
        return self.attention_parts(x.features).get(part)

    def build(self, x: Shape):
        kwargs = self.attention_kwargs(x.features)
        if x.kind == "packed":
            from ..modules.packed import PackedAttention

            return PackedAttention(**kwargs)
        from ..modules.attention import GroupAttention, RelPosTokenAttention, TokenAttention

        if self.rel_pos_bias == "table":
            return RelPosTokenAttention(x.grid, x.prefix == 1, **kwargs, **self.rope_kwargs(x))
        return GroupAttention(x.groups, **kwargs) if self.over == "groups" else TokenAttention(**kwargs,
                                                                                             **self.rope_kwargs(x))
