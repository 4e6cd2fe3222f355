"""The block that undoes groups (several items per sample, such as the frames of a video, folded into
the batch): it lays the groups of each sample end to end as one token sequence."""
from __future__ import annotations

from .base import BlockSpec, need, register
from .shape import Shape


@register
class Ungroup(BlockSpec):
    """Join each sample's groups into one token sequence, in group order: a vector per group (one frame's
    pooled features) becomes one token, so G groups give tokens (G, D) — ViViT's frame tokens for its
    temporal encoder; tokens (N, D) per group give tokens (G·N, D).

    Groups are made by ``patchify`` (``frames: groups``) and ``conv-stem`` (``frames: groups``) on a
    volume; every block between runs on each group as on a sample of its own. In the joined sequence
    the first group's leading special tokens stay the leading ones (so ``pool: cls`` takes the first
    frame's class token) and the last group's trailing ones the trailing ones; vectors give a 1-D grid
    of G positions and no special tokens.
    """

    block = "ungroup"
    takes = ("vector", "tokens")
    family = "misc"
    regroups = True

    def infer(self, x: Shape) -> Shape:
        need(x.groups > 1, f"ungroup joins the groups of each sample, but this {x.kind} holds no groups",
             "make groups first: patchify or conv-stem on a volume with frames: groups")
        g = x.groups
        if x.kind == "vector":
            return Shape.tokens(g, x.features, grid=(g,))
        n, d = x.dims
        plain = x.grid is not None and not x.prefix and not x.suffix
        return Shape.tokens(g * n, d, grid=(g, *x.grid) if plain else None, prefix=x.prefix, suffix=x.suffix)

    def pattern(self, x: Shape) -> str:
        return f"{x.groups} groups → 1 sequence"

    def build(self, x: Shape):
        from .modules.groups import Ungroup

        return Ungroup(x.groups)
