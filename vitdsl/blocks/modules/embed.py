from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .common import make_norm, randn
from .onednn import linear

# (B, C, rows, ph, cols, pw) → (B, rows, cols, the patch's values in this order)
PATCH_ORDERS = {"hwc": (0, 2, 4, 3, 5, 1), "chw": (0, 2, 4, 1, 3, 5), "whc": (0, 2, 4, 5, 3, 1)}


class Patchify(nn.Module):
    def __init__(self, channels: int, patch: tuple[int, int], dim: int | None, order: str, pre_norm: str,
                 post_norm: str, bias: bool, stride: tuple[int, int] | None = None,
                 padding: tuple[int, int] = (0, 0), grid: tuple[int, int] | None = None, shift: int = 0,
                 to_map: tuple[int, int] | None = None, frame_patch: int | None = None, fold_frames: bool = False,
                 eps: float | None = None):
        super().__init__()
        self.to_map = to_map  # the patch grid, when the output is a (B, D, rows, columns) map
        self.patch, self.order, self.shift = patch, order, shift
        self.to_map = to_map  # give a (B, C, H, W) map (channels-last in memory), not tokens
        self.stride, self.padding, self.grid = stride, padding, grid  # stride None: non-overlapping view
        self.frame_patch, self.fold_frames = frame_patch, fold_frames  # frame_patch set: cut volumes
        patch_dim = channels * (5 if shift else 1) * patch[0] * patch[1] * (frame_patch or 1)
        self.pre_norm = make_norm(pre_norm, patch_dim, eps)
        self.proj = nn.Linear(patch_dim, dim, bias=bias) if dim is not None else None
        self.post_norm = make_norm(post_norm, dim if dim is not None else patch_dim, eps)

    def tubelets(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, T, H, W) → (B, f·h·w, patch values), or (B·f, h·w, patch values) with the frames folded."""
        b, c, t, h, w = x.shape
        pf, (ph, pw) = self.frame_patch, self.patch
        f, gh, gw = t // pf, h // ph, w // pw
        x = x.view(b, c, f, pf, gh, ph, gw, pw)
        x = x.permute(0, 2, 4, 6, 3, 5, 7, 1) if self.order == "hwc" else x.permute(0, 2, 4, 6, 1, 3, 5, 7)
        return x.reshape(b * f if self.fold_frames else b, -1, c * pf * ph * pw)

    def project(self, x: torch.Tensor) -> torch.Tensor:
        if self.pre_norm is not None:
            x = self.pre_norm(x)
        if self.proj is not None:
            x = linear(x, self.proj)
        if self.post_norm is not None:
            x = self.post_norm(x)
        return x

    def conv_ok(self) -> bool:
        """Whether the projection can run as a strided convolution of the image (timm's patch embedding)."""
        return (self.stride is None and self.order == "chw" and self.pre_norm is None and self.proj is not None
                and not self.shift and self.grid is None and self.frame_patch is None)

    def convolves(self) -> bool:
        """Whether this call runs as the strided convolution. Training: the convolution keeps the image itself
        for its weight gradient, where the Linear keeps the cut patches, a second copy of the image (ViT-S,
        batch 16: 9 MiB more at the peak). Without gradients the Linear, eagerly (the convolution took 1.3x as
        long at batch 1), and compiled where the patch width is a power of two. Inductor's copy that cuts the
        patches runs scalar for other widths: 14-pixel patches at batch 8 took 4.6 ms compiled, 2.6 ms eagerly,
        2.8 ms as the compiled convolution, which for widths 4-32 took 1.1-2.3x the compiled Linear."""
        if not self.conv_ok():
            return False
        if torch.is_grad_enabled() and self.proj.weight.requires_grad:
            return True
        width = self.patch[1]
        return torch.compiler.is_compiling() and width & (width - 1) != 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.convolves():
            w = self.proj.weight
            x = F.conv2d(x, w.view(w.shape[0], x.shape[1], *self.patch), self.proj.bias, stride=self.patch)
            x = x.flatten(2).transpose(1, 2)
            if self.post_norm is not None:
                x = self.post_norm(x)
        else:
            x = self.project(self.cut(x))
        if self.to_map is not None:
            x = x.reshape(x.shape[0], *self.to_map, x.shape[-1]).permute(0, 3, 1, 2)
        return x

    def cut(self, x: torch.Tensor) -> torch.Tensor:
        """The raw patch vectors (B, N, patch values), before any norm or projection (the pixel targets of
        masked image modelling)."""
        if self.frame_patch is not None:
            return self.tubelets(x)
        if self.grid is not None:  # tokens (B, N, C) on a grid: fold back into the map
            x = x.transpose(1, 2).reshape(x.shape[0], x.shape[2], *self.grid)
        if self.shift:
            s = self.shift  # F.pad with a negative side crops: right, left, down, up, as vit-pytorch's SPT
            x = torch.cat([x] + [F.pad(x, p) for p in ((s, -s, 0, 0), (-s, s, 0, 0), (0, 0, s, -s), (0, 0, -s, s))], 1)
        b, c, h, w = x.shape
        ph, pw = self.patch
        if self.stride is None:
            x = x.view(b, c, h // ph, ph, w // pw, pw)
            x = x.permute(*PATCH_ORDERS[self.order])
            x = x.reshape(b, (h // ph) * (w // pw), c * ph * pw)
        else:
            x = F.unfold(x, self.patch, stride=self.stride, padding=self.padding)  # (B, C·ph·pw, L), c-major
            if self.order == "hwc":
                x = x.view(b, c, ph * pw, -1).permute(0, 3, 2, 1).reshape(b, -1, c * ph * pw)
            else:
                x = x.transpose(1, 2)
        return x


class LearnedPositions(nn.Module):
    def __init__(self, n: int, dim: int, init_std: float, dropout: float, init: str = "normal", unused_rows: int = 0,
                 groups: int = 1, on_map: bool = False, windows: int | None = None):
        super().__init__()
        shape = (groups, n, dim) if groups > 1 else (n + unused_rows, dim)  # one table per group of (B·G, N, D)
        if on_map:  # n, dim: the map's height and width; groups: its channels; added to (B, C, H, W)
            # windows: kept window by window, (windows², positions of a window, C)
            shape = (groups, n, dim) if windows is None else (windows ** 2, n // windows * (dim // windows), groups)
        self.windows = windows
        self.pos = nn.Parameter(randn(*shape, std=init_std))
        if init == "trunc_normal":
            nn.init.trunc_normal_(self.pos, std=init_std)
        self.drop = nn.Dropout(dropout) if dropout > 0 else None
        self.used = n if unused_rows else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.windows is not None:  # (windows², sh·sw, C), window by window → (C, H, W)
            g, (c, h, w) = self.windows, x.shape[1:]
            x = x + self.pos.view(g, g, h // g, w // g, c).permute(4, 0, 2, 1, 3).reshape(c, h, w)
        elif self.pos.dim() == 3:
            x = (x.view(-1, *self.pos.shape) + self.pos).view(x.shape)
        else:
            x = x + (self.pos if self.used is None else self.pos[: self.used])
        return self.drop(x) if self.drop is not None else x


class ScalarPositions(nn.Module):
    """One learned number per position, added to every feature: per token of (B, N, D), or per position
    of a window, shared by the windows×windows windows of a (B, C, H, W) map."""

    def __init__(self, n: int, window: tuple[int, int] | None, windows: int, init_std: float, dropout: float,
                 init: str = "normal"):
        super().__init__()
        self.pos = nn.Parameter(randn(n, std=init_std))
        if init == "trunc_normal":
            nn.init.trunc_normal_(self.pos, std=init_std)
        self.window, self.windows = window, windows
        self.drop = nn.Dropout(dropout) if dropout > 0 else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.window is None:
            x = x + self.pos[:, None]
        else:
            x = x + self.pos.view(self.window).repeat(self.windows, self.windows)
        return self.drop(x) if self.drop is not None else x


def sincos_2d(h: int, w: int, dim: int, temperature: float) -> torch.Tensor:
    """(h·w, dim) features [sin(x·ω), cos(x·ω), sin(y·ω), cos(y·ω)], ω_k = T^-(k / (dim/4 - 1))."""
    y, x = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    quarter = dim // 4
    omega = 1.0 / temperature ** (torch.arange(quarter) / max(quarter - 1, 1))
    y = y.flatten()[:, None] * omega[None, :]
    x = x.flatten()[:, None] * omega[None, :]
    return torch.cat((x.sin(), x.cos(), y.sin(), y.cos()), dim=1).float()


def sincos_3d(f: int, h: int, w: int, dim: int, temperature: float) -> torch.Tensor:
    """(f·h·w, dim) features [sin(x·ω), cos(x·ω), sin(y·ω), cos(y·ω), sin(z·ω), cos(z·ω)] (x column, y row,
    z frame), ω_k = T^-(k / (dim//6 - 1)), zero-padded to dim: vit-pytorch's posemb_sincos_3d, op for op."""
    z, y, x = torch.meshgrid(torch.arange(f), torch.arange(h), torch.arange(w), indexing="ij")
    sixth = dim // 6
    omega = 1.0 / temperature ** (torch.arange(sixth) / (sixth - 1))
    z, y, x = (t.flatten()[:, None] * omega[None, :] for t in (z, y, x))
    pe = torch.cat((x.sin(), x.cos(), y.sin(), y.cos(), z.sin(), z.cos()), dim=1)
    return F.pad(pe, (0, dim - sixth * 6)).float()


class SinCos2dPositions(nn.Module):
    """Fixed sine-cosine positions of a patch grid (``table``: sincos_2d, or sincos_3d for tubelets)."""

    def __init__(self, grid: tuple[int, ...], dim: int, temperature: float, dropout: float, table=sincos_2d):
        super().__init__()
        self.register_buffer("pos", table(*grid, dim, temperature), persistent=False)
        self.drop = nn.Dropout(dropout) if dropout > 0 else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.pos.to(x.dtype)
        return self.drop(x) if self.drop is not None else x


def sincos_1d(n: int, dim: int, temperature: float) -> torch.Tensor:
    """(n, dim): p / T^(2·(i // 2) / dim), sin on even features, cos on odd ones.

    The angles are rounded to float32 before sin/cos, as CCT computes them, so the table is bit-equal.
    """
    p = torch.arange(n, dtype=torch.float64)[:, None]
    i = torch.arange(dim, dtype=torch.float64)[None, :]
    angle = (p / temperature ** (2 * torch.div(i, 2, rounding_mode="floor") / dim)).float()
    return torch.where(torch.arange(dim) % 2 == 0, angle.sin(), angle.cos())


def fourier_features(h: int, w: int, per_axis: int, temperature: float) -> torch.Tensor:
    """(h·w, 2·per_axis): for the row, then the column, of each position, its index counted from 1 and scaled
    to (0, 2π] (XCiT divides by side + 1e-6), over T^(2·(i // 2) / per_axis); sin on even features, cos on odd."""
    i = torch.arange(per_axis, dtype=torch.float32)
    freq = temperature ** (2 * torch.div(i, 2, rounding_mode="floor") / per_axis)
    odd = i % 2 == 1

    def axis(n: int) -> torch.Tensor:
        angle = torch.arange(1, n + 1, dtype=torch.float32) / (n + 1e-6) * (2 * math.pi)
        angle = angle[:, None] / freq
        return torch.where(odd, angle.cos(), angle.sin())

    rows, cols = axis(h), axis(w)
    return torch.cat((rows[:, None].expand(h, w, per_axis), cols[None].expand(h, w, per_axis)), -1).reshape(h * w, -1)


class FourierPositions(nn.Module):
    """XCiT's positional encoding: fixed Fourier features of each patch's row and column, projected by a
    learned Linear map and added to the tokens."""

    def __init__(self, grid: tuple[int, int], dim: int, per_axis: int, temperature: float, dropout: float):
        super().__init__()
        self.register_buffer("features", fourier_features(*grid, per_axis, temperature), persistent=False)
        self.proj = nn.Linear(2 * per_axis, dim)
        self.drop = nn.Dropout(dropout) if dropout > 0 else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.proj(self.features.to(x.dtype))
        return self.drop(x) if self.drop is not None else x


class SinCos1dPositions(nn.Module):
    def __init__(self, n: int, dim: int, temperature: float, store: str, dropout: float):
        super().__init__()
        table = sincos_1d(n, dim, temperature)
        if store == "parameter":
            self.pos = nn.Parameter(table, requires_grad=False)
        else:
            self.register_buffer("pos", table)
        self.drop = nn.Dropout(dropout) if dropout > 0 else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.pos.to(x.dtype)
        return self.drop(x) if self.drop is not None else x


class NoPositions(nn.Module):
    """Positions switched off; only the dropout that follows them remains."""

    def __init__(self, dropout: float):
        super().__init__()
        self.drop = nn.Dropout(dropout) if dropout > 0 else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(x) if self.drop is not None else x


class ClassTokens(nn.Module):
    def __init__(self, count: int, dim: int, init_std: float, append: bool = False, registers: int = 0):
        super().__init__()
        self.cls = nn.Parameter(randn(count, dim, std=init_std)) if count else None  # none: registers only
        self.registers = nn.Parameter(randn(registers, dim, std=init_std)) if registers else None
        self.append = append

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        special = torch.cat([t for t in (self.cls, self.registers) if t is not None])
        special = special.expand(x.shape[0], -1, -1)
        return torch.cat((x, special) if self.append else (special, x), dim=1)
