"""Attention within windows of a feature map (``local-attn``: contiguous blocks or a dilated grid) with
a relative position bias, and RegionViT's regional-to-local attention (``region-attn``)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from ..common import randn
from .numerics import SelfAttention

# The map's height and width as gh windows of sh rows (block) or sh rows of gh windows (grid: dilated)
AXES = {"block": ("(gh sh)", "(gw sw)"), "grid": ("(sh gh)", "(sw gw)")}
WINDOWS = "(b gh gw) (sh sw) c"


def relative_index(wh: int, ww: int | None = None, col_major: bool = False) -> torch.Tensor:
    """(n, n) index, n = wh·ww, into a (2wh-1)·(2ww-1) table: (Δrow + wh - 1)·(2ww - 1) + (Δcol + ww - 1),
    or with ``col_major`` (Δrow + wh - 1) + (Δcol + ww - 1)·(2wh - 1)."""
    ww = wh if ww is None else ww
    grid = torch.stack(torch.meshgrid(torch.arange(wh), torch.arange(ww), indexing="ij")).flatten(1).T  # (n, 2)
    rel = grid[:, None, :] - grid[None, :, :]
    if col_major:
        return rel[..., 0] + wh - 1 + (rel[..., 1] + ww - 1) * (2 * wh - 1)
    return (rel[..., 0] + wh - 1) * (2 * ww - 1) + rel[..., 1] + ww - 1


def offsets(rh: int, rw: int) -> torch.Tensor:
    """(Δrow, Δcol) for Δrow in [-rh, rh], Δcol in [-rw, rw], row-major, as floats: (2rh+1)·(2rw+1) × 2."""
    grid = torch.meshgrid(torch.arange(-rh, rh + 1), torch.arange(-rw, rw + 1), indexing="ij")
    return torch.stack(grid).flatten(1).T.float()


def dynamic_bias_mlp(hidden: int) -> nn.Sequential:
    """CrossFormer's dynamic position bias: an offset (2,) → one bias, through three hidden layers."""
    layers: list[nn.Module] = [nn.Linear(2, hidden)]
    for last in (False, False, True):
        layers += [nn.LayerNorm(hidden), nn.ReLU(), nn.Linear(hidden, 1 if last else hidden)]
    return nn.Sequential(*layers)


class HeadsFirstTable(nn.Module):
    """A relative position table laid out heads × (2wh-1) × (2ww-1), read at key - query (MaxViT's TensorFlow
    code): called with the (n, n) query - key index into the flattened offsets, it gives the (heads, n, n) bias."""

    def __init__(self, heads: int, wh: int, ww: int):
        super().__init__()
        self.weight = nn.Parameter(randn(heads, 2 * wh - 1, 2 * ww - 1, std=0.02))

    def forward(self, index: torch.Tensor) -> torch.Tensor:
        # key - query is the offset mirrored in both axes: flat index (rows·cols - 1) - that of query - key
        return self.weight.flatten(1)[:, self.weight[0].numel() - 1 - index]


def shift_mask(size: tuple[int, int], window: tuple[int, int], shift: tuple[int, int]) -> torch.Tensor:
    """(windows, n, n) boolean, n = wh·ww: which tokens of a block window of the map rolled by ``shift`` may
    attend to each other. The roll brings the last ``shift`` rows (columns) next to the first; a window cut
    across that seam, or the window's own border next to it, holds regions that were not neighbours."""
    def regions(side: int, win: int, s: int) -> torch.Tensor:
        r = torch.zeros(side, dtype=torch.long)
        if s:
            r[side - win:side - s], r[side - s:] = 1, 2
        return r

    (h, w), (wh, ww) = size, window
    ids = regions(h, wh, shift[0])[:, None] * 3 + regions(w, ww, shift[1])[None, :]
    ids = rearrange(ids, "(gh sh) (gw sw) -> (gh gw) (sh sw)", sh=wh, sw=ww)
    return ids[:, :, None] == ids[:, None, :]


class LocalAttention(SelfAttention):
    """Attention within windows of a (B, C, H, W) feature map: contiguous blocks or a dilated grid."""

    def __init__(self, partition: str, window: tuple[int, int], rel_pos_bias: str, rel_pos_index: str = "row-major",
                 bias_hidden: int | None = None, bias_index: str = "exact", head_merge: str = "heads",
                 table_layout: str = "offsets-first", shift: tuple[int, int] = (0, 0),
                 map_size: tuple[int, int] | None = None, pad: str = "none", **kwargs):
        super().__init__(**kwargs)
        self.shift, self.pad_first = tuple(shift), pad == "before-roll"
        size = map_size and tuple(s + (-s) % k for s, k in zip(map_size, window))  # padded to whole windows
        mask = shift_mask(size, window, self.shift) if any(self.shift) else None  # of the map it was built for
        self.register_buffer("shift_mask", mask, persistent=False)
        # which tokens of the windows are the map's, not padding: zeroed after the norm, the padding reaches the
        # projections as zeros, as in Swin (which pads the normed map)
        keep = None
        if map_size and size != tuple(map_size) and self.norm_position == "pre":
            ones = self.windowed(torch.ones(1, *map_size, 1), window)[0]
            keep = rearrange(ones, f"b {AXES[partition][0]} {AXES[partition][1]} c -> {WINDOWS}",
                             sh=window[0], sw=window[1], gh=size[0] // window[0], gw=size[1] // window[1])
        self.register_buffer("pad_keep", keep, persistent=False)
        self.partition, self.window, self.interleave = partition, tuple(window), head_merge == "channels"
        wh, ww = self.window
        self.rel_pos_bias = self.rel_pos_mlp = None
        self.heads_first = rel_pos_bias == "table" and table_layout == "heads-first"
        if self.heads_first:
            self.rel_pos_bias = HeadsFirstTable(self.heads, wh, ww)
        elif rel_pos_bias == "table":
            self.rel_pos_bias = nn.Embedding((2 * wh - 1) * (2 * ww - 1), self.heads)
        elif rel_pos_bias == "dynamic":
            self.rel_pos_mlp = dynamic_bias_mlp(bias_hidden)
            # vit-pytorch evaluates one offset more on each side than the window has, then reads the
            # table with the stride of the exact one (see local-attn's bias_index)
            reach = (wh, ww) if bias_index == "vit-pytorch" else (wh - 1, ww - 1)
            self.register_buffer("rel_pos_offsets", offsets(*reach), persistent=False)
        if rel_pos_bias != "none":
            self.register_buffer("rel_pos_index", relative_index(wh, ww, rel_pos_index == "col-major"),
                                 persistent=False)

    def bias(self) -> torch.Tensor | None:
        if self.heads_first:
            return self.rel_pos_bias(self.rel_pos_index)
        if self.rel_pos_bias is not None:
            return self.rel_pos_bias(self.rel_pos_index).permute(2, 0, 1)
        if self.rel_pos_mlp is not None:  # (n, n), shared by all heads
            return self.rel_pos_mlp(self.rel_pos_offsets).squeeze(-1)[self.rel_pos_index]
        return None

    @staticmethod
    def per_window(m: torch.Tensor, b: int) -> torch.Tensor:
        """A (windows, ...) tensor repeated for b = batch × windows windows: (b, ...)."""
        return m.unsqueeze(0).expand(b // m.shape[0], *m.shape).reshape(b, *m.shape[1:])

    def window_mask(self, b: int) -> torch.Tensor | None:
        """The shifted windows' mask for b = batch × windows windows, (b, 1, n, n), or None."""
        return None if self.shift_mask is None else self.per_window(self.shift_mask, b).unsqueeze(1)

    def masks_logits(self) -> bool:
        """Whether the explicit softmax adds the shift mask to the logits in ``pre_softmax`` (plain heads), else
        ``attend`` takes it as a mask. A property of the module, not a flag ``mix`` sets: a forward that writes
        an attribute is a side effect torch.compile must replay after every compiled call."""
        return self.shift_mask is not None and self.head_mix == "none"

    def pre_softmax(self, sim: torch.Tensor) -> torch.Tensor:
        sim = super().pre_softmax(sim)
        if not self.masks_logits():  # pre_softmax runs on the explicit path only
            return sim
        # The shifted windows' mask as -max added window by window, as timm adds its -100: no mask copied
        # per image and window, and none kept for the backward (Swin-T, batch 16: 3.4 MiB).
        mask = self.shift_mask
        blocked = sim.new_zeros(mask.shape).masked_fill(~mask, torch.finfo(sim.dtype).min)
        return (sim.view(-1, mask.shape[0], *sim.shape[1:]) + blocked[:, None]).view(sim.shape)

    def mix(self, x: torch.Tensor) -> torch.Tensor:
        if self.pad_keep is not None:
            x = x * self.per_window(self.pad_keep, x.shape[0])
        q, k, v = self.qkv_heads(x)
        # with an explicit softmax, the shift mask is added to the logits in pre_softmax
        biased = self.rel_pos_bias is not None or self.rel_pos_mlp is not None
        mask = None if self.masks_logits() and not self.fuses(biased, x.device) else self.window_mask(x.shape[0])
        out = self.attend(q, k, v, mask=mask)  # (B, heads, N, d)
        return self.output(out.permute(0, 2, 3, 1).flatten(2)) if self.interleave else self.merge(out)

    def windowed(self, x: torch.Tensor, window: tuple[int, int]) -> tuple[torch.Tensor, tuple[int, ...]]:
        """(the (B, H, W, C) map rolled and padded as the windows are cut from it, its padding (left, right,
        top, bottom))."""
        _, h, w, _ = x.shape
        pad = (0, (-w) % window[1], 0, (-h) % window[0])
        if any(pad) and self.pad_first:
            x = F.pad(x, (0, 0, *pad))
        if any(self.shift):
            x = torch.roll(x, (-self.shift[0], -self.shift[1]), dims=(1, 2))
        if any(pad) and not self.pad_first:
            x = F.pad(x, (0, 0, *pad))
        return x, pad

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Rolled, padded and cut channels-last, the (B, H, W, C) order the memory has: a compiler lays out what it
        # derives (the roll, and in backward every gradient up to the block's input) contiguous in the logical
        # order, and (B, C, H, W) there made the backward gather each value across windows (Swin-T: the three
        # largest kernels of its compiled training step)
        _, _, h, w = x.shape
        x, pad = self.windowed(x.permute(0, 2, 3, 1), self.window)
        sh, sw = self.window
        rows, cols = AXES[self.partition]
        sizes = dict(sh=sh, sw=sw, gh=x.shape[1] // sh, gw=x.shape[2] // sw)
        t = super().forward(rearrange(x, f"b {rows} {cols} c -> {WINDOWS}", **sizes))
        t = rearrange(t, f"{WINDOWS} -> b {rows} {cols} c", **sizes)
        if any(pad) and not self.pad_first:
            t = t[:, :h, :w]
        if any(self.shift):
            t = torch.roll(t, self.shift, dims=(1, 2))
        if any(pad) and self.pad_first:
            t = t[:, :h, :w]
        return t.permute(0, 3, 1, 2)  # (b, c, h, w), channels-last in memory: the next token-wise block copies none


class RegionalAttention(LocalAttention):
    """RegionViT's regional-to-local attention on (B, R + H·W, C) tokens: R region tokens on an rh×rw grid,
    one per window of the H×W patch grid, lead the patch tokens. The region tokens attend among themselves,
    then each window together with its region token; one set of weights serves both steps."""

    def __init__(self, regions: tuple[int, int], **kwargs):
        super().__init__(partition="block", **kwargs)
        self.regions = tuple(regions)

    def bias(self) -> torch.Tensor | None:
        return None  # the windows' bias is passed to their step; the region tokens' step has none

    def step(self, x: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        """The residual block on (B, N, C) tokens."""
        h = self.norm(x) if self.norm_position == "pre" else x
        return self.join(self.branch(self.merge(self.attend(*self.qkv_heads(h), bias=bias))), x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        (rh, rw), (sh, sw) = self.regions, self.window
        sizes = dict(rh=rh, rw=rw, sh=sh, sw=sw)
        r, t = x[:, :rh * rw], x[:, rh * rw:]
        r = self.step(r)
        t = rearrange(t, "b (rh sh rw sw) c -> (b rh rw) (sh sw) c", **sizes)
        bias = super().bias()
        bias = None if bias is None else F.pad(bias, (1, 0, 1, 0))  # the region token (first) gets no bias
        t = self.step(torch.cat((rearrange(r, "b r c -> (b r) 1 c"), t), dim=1), bias)
        r = rearrange(t[:, 0], "(b r) c -> b r c", r=rh * rw)
        t = rearrange(t[:, 1:], "(b rh rw) (sh sw) c -> b (rh sh rw sw) c", **sizes)
        return torch.cat((r, t), dim=1)
