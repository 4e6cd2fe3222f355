"""Blocks a user might register (``vitdsl.register_block``), declaring what they are: tests/test_capabilities.py
shows them filling the objectives' roles. They copy the built-in blocks' arithmetic (and name their tensors
as those do: proj, pos), so the objectives' losses match the built-in blocks' exactly."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from pydantic import PositiveInt
from torch import nn

from vitdsl.blocks import BlockSpec, Shape


class CutAndProject(nn.Module):
    def __init__(self, channels: int, patch: int, dim: int):
        super().__init__()
        self.patch = patch
        self.proj = nn.Linear(channels * patch * patch, dim)

    def cut(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        p = self.patch
        x = x.view(b, c, h // p, p, w // p, p).permute(0, 2, 4, 3, 5, 1)  # (p1 p2 c), as patchify's hwc
        return x.reshape(b, (h // p) * (w // p), p * p * c)

    def project(self, patches: torch.Tensor) -> torch.Tensor:
        return self.proj(patches)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project(self.cut(x))


class UserPatches(BlockSpec):
    """Non-overlapping square patches, projected."""

    block = "test-patches"
    takes = ("image",)
    capabilities = frozenset({"patchify"})
    patch: PositiveInt = 8
    dim: PositiveInt = 32

    def patch_dim(self, x: Shape) -> int:
        return x.features * self.patch ** 2

    def infer(self, x: Shape) -> Shape:
        g = x.dims[1] // self.patch, x.dims[2] // self.patch
        return Shape.tokens(g[0] * g[1], self.dim, grid=g)

    def count_params(self, x: Shape) -> int:
        return (self.patch_dim(x) + 1) * self.dim

    def build(self, x: Shape):
        return CutAndProject(x.features, self.patch, self.dim)


class Table(nn.Module):
    def __init__(self, n: int, dim: int):
        super().__init__()
        self.pos = nn.Parameter(torch.randn(n, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.pos


class UserPositions(BlockSpec):
    """A learned table of positions (no kinds)."""

    block = "test-positions"
    capabilities = frozenset({"positions"})

    def count_params(self, x: Shape) -> int:
        return x.numel

    def build(self, x: Shape):
        return Table(*x.dims)


class Prepend(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.cls = nn.Parameter(torch.randn(1, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat((self.cls.expand(x.shape[0], -1, -1), x), dim=1)


class UserClassToken(BlockSpec):
    """One learned class token ahead of the sequence."""

    block = "test-cls"
    capabilities = frozenset({"special-tokens"})

    def infer(self, x: Shape) -> Shape:
        return Shape.tokens(x.dims[0] + 1, x.features, grid=x.grid, prefix=x.prefix + 1)

    def count_params(self, x: Shape) -> int:
        return x.features

    def build(self, x: Shape):
        return Prepend(x.features)


class First(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, 0]


class UserPool(BlockSpec):
    """The first token."""

    block = "test-pool"
    capabilities = frozenset({"readout"})

    def infer(self, x: Shape) -> Shape:
        return Shape.vector(x.features)

    def build(self, x: Shape):
        return First()


class UserHead(BlockSpec):
    """A linear classifier on a vector."""

    block = "test-head"
    takes = ("vector",)
    capabilities = frozenset({"readout", "classifier"})
    classes: PositiveInt = 5

    def infer(self, x: Shape) -> Shape:
        return Shape.vector(self.classes)

    def count_params(self, x: Shape) -> int:
        return (x.features + 1) * self.classes

    def build(self, x: Shape):
        return nn.Linear(x.features, self.classes)


class ContextAttention(nn.Module):
    """Pre-norm single-head attention with a residual; keys and values from ``context`` when given."""

    takes_context = True

    def __init__(self, dim: int):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.out = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        h = self.norm(x)
        c = h if context is None else self.norm(context)
        d = x.shape[-1]
        q = F.linear(h, self.qkv.weight[:d])
        k, v = F.linear(c, self.qkv.weight[d:]).chunk(2, dim=-1)
        weights = (q @ k.transpose(-1, -2) / math.sqrt(d)).softmax(dim=-1)
        return x + self.out(weights @ v)


class UserAttention(BlockSpec):
    """Single-head attention that can attend to a context."""

    block = "test-attn"
    capabilities = frozenset({"attention", "context"})

    def count_params(self, x: Shape) -> int:
        d = x.features
        return 2 * d + 3 * d * d + d * d + d

    def build(self, x: Shape):
        return ContextAttention(x.features)


def plain(cls: type[BlockSpec]) -> type[BlockSpec]:
    """The same block under another name, declaring nothing."""
    return type(f"Plain{cls.__name__}", (cls,), {"block": cls.block.replace("test-", "test-plain-"),
                                                  "capabilities": frozenset(), "__module__": __name__})


class UserMixer(UserAttention):
    """Attention that attends only to its own tokens."""

    block = "test-mixer"
    capabilities = frozenset({"attention"})


TEST_BLOCKS = [UserPatches, UserPositions, UserClassToken, UserPool, UserHead, UserAttention, UserMixer]
TEST_BLOCKS += [plain(c) for c in (UserPatches, UserPositions, UserPool, UserHead)]
