"""Tensor shapes as the graph builder sees them: a kind plus sizes, batch dimension left out.

Kinds: ``image`` (C, H, W) for pixels and feature maps, ``volume`` (C, T, H, W) for video,
``tokens`` (N, D) for sequences, ``vector`` (D,) for pooled features and logits. Token shapes also
remember the spatial ``grid`` of their patch tokens and how many special tokens (``prefix``, e.g. the
cls token) lead the sequence and how many trail it (``suffix``, e.g. a distillation token), so blocks
that need a grid (sincos positions, local attention) can check for one before any weight exists.

Two kinds describe variable-size inputs (NaViT): ``images`` (C, H, W) is a batch of samples, each a
list of images of any size up to H×W; ``packed`` (N, D) is their tokens packed per sample into one
padded sequence, whose layout (which image each token belongs to, its patch row and column) travels
beside it at run time as its extras (``blocks.modules.packed.Packing``). N is the token count of one image of
the maximum size, which is what the shape rules and the summary trace.

Any shape may hold ``groups`` G > 1 independent items per sample (the frames of a video): at run time
they are always folded into the batch, as (B·G, ...) tensors, so every block runs on each group as it
would on a sample of its own. ``dims`` are those of one group. Only the blocks that make or undo groups
(``regroups``) know about them; the graph builder carries the groups of the rest through.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal

InputKind = Literal["image", "volume", "tokens", "vector", "images"]  # what a blueprint's input may be
Kind = InputKind | Literal["packed"]  # packed sequences are made by patchify from images, never given
RANK = {"image": 3, "volume": 4, "tokens": 2, "vector": 1, "images": 3, "packed": 2}
CHANNELS_FIRST = ("image", "volume", "images")  # kinds whose first size is channels and the rest spatial


@dataclass(frozen=True)
class Shape:
    kind: str
    dims: tuple[int, ...]
    grid: tuple[int, ...] | None = field(default=None)
    prefix: int = 0
    suffix: int = 0
    # the grid of the leading special tokens when they form one (RegionViT's region tokens, one per
    # window of the patch grid, row-major); kept by blocks that keep the token layout
    prefix_grid: tuple[int, ...] | None = None
    groups: int = 1

    def __post_init__(self):
        if self.kind not in RANK:
            raise ValueError(f"unknown tensor kind {self.kind!r}")
        if len(self.dims) != RANK[self.kind]:
            raise ValueError(f"{self.kind} shapes have {RANK[self.kind]} sizes, got {self.dims}")
        if self.groups < 1:
            raise ValueError(f"groups must be at least 1, got {self.groups}")

    @classmethod
    def image(cls, c: int, h: int, w: int) -> "Shape":
        return cls("image", (c, h, w))

    @classmethod
    def tokens(cls, n: int, d: int, grid=None, prefix: int = 0, suffix: int = 0, groups: int = 1) -> "Shape":
        return cls("tokens", (n, d), tuple(grid) if grid is not None else None, prefix, suffix, groups=groups)

    @classmethod
    def vector(cls, d: int) -> "Shape":
        return cls("vector", (d,))

    @property
    def features(self) -> int:
        """Channels of a map, width of a token or vector."""
        return self.dims[0] if self.kind in CHANNELS_FIRST else self.dims[-1]

    @property
    def spatial(self) -> tuple[int, ...]:
        return self.dims[1:] if self.kind in CHANNELS_FIRST else ()

    @property
    def numel(self) -> int:
        n = 1
        for d in self.dims:
            n *= d
        return n

    def with_features(self, d: int) -> "Shape":
        if self.kind in CHANNELS_FIRST:
            return Shape(self.kind, (d, *self.dims[1:]), groups=self.groups)
        return replace(self, dims=(*self.dims[:-1], d))

    def with_groups(self, groups: int) -> "Shape":
        return self if groups == self.groups else replace(self, groups=groups)

    def __str__(self) -> str:
        text = "×".join(str(d) for d in self.dims)
        return f"{self.kind} {text}" + groups_text(self.groups)

    def batched(self, batch: int = 1) -> tuple[int, ...]:
        """The run-time tensor shape: groups folded into the batch."""
        return (batch * self.groups, *self.dims)


def groups_text(groups: int) -> str:
    """' ×8 groups' after a shape that holds 8 groups per sample; nothing for one."""
    return f" ×{groups} groups" if groups > 1 else ""
