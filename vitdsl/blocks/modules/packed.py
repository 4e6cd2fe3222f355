"""Packed sequences of variable-size images (NaViT, "Patch n' Pack").

A batch is a list of samples, each a list of images (C, h, w) of any size up to the blueprint's
maximum; a plain (B, C, H, W) tensor is B samples of one image each. ``PackedPatchify`` cuts every
image into patches and concatenates a sample's patches into one sequence, padded to the longest
sample. It gives the (B, N, D) tokens and, as their extras (``padded.py``), their ``Packing`` —
which image of its sample each token belongs to, which tokens are padding, each token's patch row and
column, and how many images each sample holds.

The compiled network carries the packing next to the tokens through the blocks that keep them
(norms, MLPs, residual blocks), so the generic blocks work on packed tokens unchanged. The blocks that
need it read it: ``FactorizedPositions`` (row and column of each patch), ``PackedAttention`` (attend
within one's own image) and ``AttentionPool`` (one query per image). A plain (B, C, H, W) batch packs
with static shapes and no mask, so it exports and compiles; a list packs with sizes read from the
images (Python ints: a compiled model specialises on them).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pad_sequence

from ...errors import ShapeError
from .attention import TokenAttention
from .common import randn
from .embed import Patchify


@dataclass(eq=False)
class Packing:
    """Where each token of a packed (B, N, D) batch comes from.

    ``ids`` (B, N): the token's image within its sample (0 on padding, as vit-pytorch pads, so that no
    attention row is empty); ``valid`` (B, N): False on padding; ``pos`` (B, N, 2): patch row and
    column; ``counts``: images per sample, None for one each. ``single``: one image per sample and no
    padding, so no mask is needed.
    """

    ids: torch.Tensor
    valid: torch.Tensor
    pos: torch.Tensor
    counts: tuple[int, ...] | None = None
    single: bool = False

    def __post_init__(self):
        # (B, 1, N, N): query and key in the same image, key not padding; made once for all attention blocks
        ids, valid = self.ids, self.valid
        same = ids[:, None, :, None] == ids[:, None, None, :]
        self.attn_mask = None if self.single else same & valid[:, None, None, :]

    @property
    def slots(self) -> int:
        """Query slots per sample: the most images a sample holds."""
        return max(self.counts) if self.counts else 1

    def pool_mask(self) -> torch.Tensor | None:
        """(B, 1, Q, N) bool: query i sees the tokens of image i of its sample."""
        if self.single:
            return None
        image = torch.arange(self.slots, device=self.ids.device)
        return ((image[:, None] == self.ids[:, None, :]) & self.valid[:, None, :])[:, None]

    def real_queries(self) -> list[int] | None:
        """Which of the B·Q query slots stand for an image (None: all), as Python ints: a static index."""
        q = self.slots
        if self.counts is None or all(c == q for c in self.counts):
            return None
        return [b * q + i for b, c in enumerate(self.counts) for i in range(c)]


def grid_positions(gh: int, gw: int, device=None) -> torch.Tensor:
    """(gh·gw, 2) patch (row, column), row-major."""
    rows = torch.arange(gh, device=device).repeat_interleave(gw)
    cols = torch.arange(gw, device=device).repeat(gh)
    return torch.stack([rows, cols], dim=-1)


def group_images(images: list[torch.Tensor], patch: int | tuple[int, int], max_seq_len: int,
                 token_dropout: float = 0.0) -> list[list[torch.Tensor]]:
    """Greedily split a flat list of images into samples of at most ``max_seq_len`` tokens, in order
    (vit-pytorch's ``group_images_by_max_seq_len``; with token dropout, an image counts the tokens it
    keeps)."""
    ph, pw = (patch, patch) if isinstance(patch, int) else patch
    groups: list[list[torch.Tensor]] = []
    group: list[torch.Tensor] = []
    length = 0
    for image in images:
        if not isinstance(image, torch.Tensor):
            raise ShapeError(f"group images: expected a flat list of image tensors, got a {type(image).__name__}",
                             hint="group a flat list [img, img, ...]; a list of lists is already grouped")
        h, w = image.shape[-2:]
        n = int((h // ph) * (w // pw) * (1 - token_dropout))
        if n > max_seq_len:
            raise ShapeError(f"an image of {h}×{w} has {n} tokens, more than max_seq_len {max_seq_len}",
                             hint="raise max_seq_len or shrink the image")
        if length + n > max_seq_len:
            groups.append(group)
            group, length = [], 0
        group.append(image)
        length += n
    if group:
        groups.append(group)
    return groups


class PackedPatchify(Patchify):
    """Patches of every image, packed per sample and padded; norm → projection → norm on the packed
    batch. Token dropout (training only) keeps a random ``max(1, int(n·(1-p)))`` of each image's n
    patches, drawn as vit-pytorch draws them."""

    def __init__(self, channels: int, patch: tuple[int, int], dim: int, order: str, pre_norm: str, post_norm: str,
                 bias: bool, max_size: tuple[int, int], token_dropout: float, max_seq_len: int | None,
                 eps: float | None = None):
        super().__init__(channels, patch, dim, order, pre_norm, post_norm, bias, eps=eps)
        self.channels, self.max_size = channels, max_size
        self.token_dropout, self.max_seq_len = token_dropout, max_seq_len

    gives_extras = True

    def forward(self, images) -> tuple[torch.Tensor, Packing]:
        dropping = self.training and self.token_dropout > 0
        if isinstance(images, torch.Tensor) and not dropping:
            patches, packing = self._pack_batch(images)
        else:
            patches, packing = self._pack(self._samples(images, dropping))
        if self.pre_norm is not None:
            patches = self.pre_norm(patches)
        x = self.proj(patches)
        if self.post_norm is not None:
            x = self.post_norm(x)
        return x, packing

    def _samples(self, images, dropping: bool) -> list[list[torch.Tensor]]:
        if isinstance(images, torch.Tensor):
            self._check(images, batched=True)
            return [[image] for image in images]
        if not isinstance(images, (list, tuple)) or not images:
            raise ShapeError("expected images as a (B, C, H, W) tensor or a non-empty list, got "
                             f"{type(images).__name__}",
                             hint="pass [[img, img], [img]] (images per sample) or a flat [img, img, ...]")
        if all(isinstance(i, torch.Tensor) for i in images):
            if self.max_seq_len is None:
                return [list(images)]
            return group_images(list(images), self.patch, self.max_seq_len, self.token_dropout if dropping else 0.0)
        return [list(sample) for sample in images]

    def _check(self, image: torch.Tensor, batched: bool = False) -> None:
        ph, pw = self.patch
        mh, mw = self.max_size
        want = 4 if batched else 3
        if not isinstance(image, torch.Tensor) or image.dim() != want or image.shape[-3] != self.channels:
            got = tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__
            raise ShapeError(f"expected {'a batch (B, C, H, W)' if batched else 'an image (C, H, W)'} with "
                             f"C = {self.channels}, got {got}",
                             hint="a sample is a list of (C, H, W) images; a batch is a list of samples")
        h, w = image.shape[-2:]
        if h % ph or w % pw:
            raise ShapeError(f"image {h}×{w} is not divisible by the patch {ph}×{pw}",
                             hint=f"crop or pad images to multiples of {ph}×{pw}")
        if h > mh or w > mw:
            raise ShapeError(f"image {h}×{w} is larger than the blueprint's maximum {mh}×{mw}",
                             hint="the position tables cover the maximum size only: raise the input size")

    def _patches(self, image: torch.Tensor) -> torch.Tensor:
        c, h, w = image.shape
        ph, pw = self.patch
        x = image.reshape(c, h // ph, ph, w // pw, pw)
        x = x.permute(1, 3, 2, 4, 0) if self.order == "hwc" else x.permute(1, 3, 0, 2, 4)
        return x.reshape((h // ph) * (w // pw), c * ph * pw)

    def _pack_batch(self, x: torch.Tensor) -> tuple[torch.Tensor, Packing]:
        self._check(x, batched=True)
        b, c, h, w = x.shape
        ph, pw = self.patch
        gh, gw = h // ph, w // pw
        x = x.reshape(b, c, gh, ph, gw, pw)
        x = x.permute(0, 2, 4, 3, 5, 1) if self.order == "hwc" else x.permute(0, 2, 4, 1, 3, 5)
        patches = x.reshape(b, gh * gw, c * ph * pw)
        ids = torch.zeros(b, gh * gw, dtype=torch.long, device=x.device)
        pos = grid_positions(gh, gw, x.device).expand(b, -1, -1)
        return patches, Packing(ids, torch.ones_like(ids, dtype=torch.bool), pos, single=True)

    def _pack(self, samples: list[list[torch.Tensor]]) -> tuple[torch.Tensor, Packing]:
        dropping = self.training and self.token_dropout > 0
        ph, pw = self.patch
        seqs, positions, ids, counts = [], [], [], []
        for sample in samples:
            if not sample:
                raise ShapeError("a sample holds no images", hint="every sample needs at least one image")
            sample_seqs, sample_pos = [], []
            for image in sample:
                self._check(image)
                seq = self._patches(image)
                pos = grid_positions(image.shape[1] // ph, image.shape[2] // pw, image.device)
                if dropping:
                    n = seq.shape[0]
                    keep = max(1, int(n * (1 - self.token_dropout)))
                    keep = torch.randn((n,), device=image.device).topk(keep).indices
                    seq, pos = seq[keep], pos[keep]
                sample_seqs.append(seq)
                sample_pos.append(pos)
            device = sample_seqs[0].device  # image ids from Python sizes: no data-dependent shape to compile
            ids.append(torch.cat([torch.full((s.shape[0],), i, device=device) for i, s in enumerate(sample_seqs)]))
            seqs.append(torch.cat(sample_seqs))
            positions.append(torch.cat(sample_pos))
            counts.append(len(sample))
        lengths = [s.shape[0] for s in seqs]
        device = seqs[0].device
        valid = torch.stack([torch.arange(max(lengths), device=device) < n for n in lengths])
        single = all(c == 1 for c in counts) and len(set(lengths)) == 1
        packing = Packing(pad_sequence(ids, batch_first=True), valid, pad_sequence(positions, batch_first=True),
                          tuple(counts), single)
        return pad_sequence(seqs, batch_first=True), packing


class FactorizedPositions(nn.Module):
    """x + rows[r] + cols[c] for each token's patch row r and column c."""

    reads_extras = True

    def __init__(self, grid: tuple[int, int], dim: int, init_std: float, dropout: float):
        super().__init__()
        self.grid = grid
        self.rows = nn.Parameter(randn(grid[0], dim, std=init_std))
        self.cols = nn.Parameter(randn(grid[1], dim, std=init_std))
        self.drop = nn.Dropout(dropout) if dropout > 0 else None

    def forward(self, x: torch.Tensor, extras: Packing | None = None) -> torch.Tensor:
        packing = extras
        if packing is not None:
            pos = packing.pos
        else:
            gh, gw = self.grid
            if x.shape[1] != gh * gw:
                raise ShapeError(f"{x.shape[1]} tokens without a packing do not fill the {gh}×{gw} position grid",
                                 hint="feed tokens from patchify on images, or of exactly one grid")
            pos = grid_positions(gh, gw, x.device)
        x = x + self.rows[pos[..., 0]] + self.cols[pos[..., 1]]
        return self.drop(x) if self.drop is not None else x


class PackedAttention(TokenAttention):
    """Self-attention in which a token sees only the tokens of its own image (plain tensors: all
    tokens)."""

    def forward(self, x: torch.Tensor, extras: Packing | None = None) -> torch.Tensor:
        h = self.norm(x) if self.norm_position == "pre" else x
        mask = extras.attn_mask if extras is not None else None
        return self.join(self.branch(self.merge(self.attend(*self.qkv_heads(h), mask))), x)


class AttentionPool(PackedAttention):
    """One learned query per image attends to that image's tokens (the context, not normalised);
    the residual adds the query back. Gives (images, D): the images of all samples in order."""

    def __init__(self, init_std: float, **kwargs):
        super().__init__(**kwargs)
        self.query = nn.Parameter(randn(kwargs["dim"], std=init_std))

    def forward(self, x: torch.Tensor, extras: Packing | None = None) -> torch.Tensor:
        context, packing = x, extras
        b, n, d = context.shape
        slots = packing.slots if packing is not None else 1
        queries = self.query.repeat(b, slots, 1)
        y = self.norm(queries) if self.norm_position == "pre" else queries
        inner = self.heads * self.dim_head
        weight, bias = self.qkv.weight, self.qkv.bias
        q = F.linear(y, weight[:inner], None if bias is None else bias[:inner])
        k, v = F.linear(context, weight[inner:], None if bias is None else bias[inner:]).chunk(2, dim=-1)
        mask = packing.pool_mask() if packing is not None else None
        # a query slot without an image has an all-masked row: the finite -max fill keeps it finite,
        # and it is dropped afterwards
        y = self.merge(self.attend(self.split(q), self.split(k), self.split(v), mask))
        y = self.join(self.branch(y), queries).reshape(b * slots, d)
        real = packing.real_queries() if packing is not None else None
        return y if real is None else y[torch.tensor(real, device=y.device)]
