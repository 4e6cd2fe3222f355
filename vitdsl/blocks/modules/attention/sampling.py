"""Adaptive token sampling (``sampling-attn``, vit-pytorch's ``ats_vit``): global attention that then
keeps the class token and the tokens drawn by the class token's attention, as padded tokens.

The sampling reproduces vit-pytorch op for op, random draws included, so that with the same seed
the same tokens are kept: a one-ulp difference in the scores could flip a Gumbel-max draw.

How many tokens go on depends on the draws: eager keeps as many as the batch's widest image (as
vit-pytorch). That size cannot be captured, so under ``torch.compile``, ``torch.export`` and the
ONNX exporter (``torch.compiler.is_compiling()``) every sampling block gives its static budget,
``samples`` tokens after the class token, the rest padding, and decides whether to sample from the
padding mask as eager decides from the width: for the same draws the logits are the same,
``token-ids`` get trailing −1 columns.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..padded import Padding, padding_of
from .numerics import SelfAttention

EPS = 1e-6  # vit-pytorch's, in the score normalisation, the log and the Gumbel noise


class SamplingAttention(SelfAttention):
    """Pre-softmax-masked global attention; then, when more than ``samples`` tokens follow the class
    token, Gumbel-max sampling of the tokens to keep. Returns (tokens, their Padding)."""

    gives_extras = True
    reads_extras = True

    def __init__(self, samples: int, **kwargs):
        super().__init__(**kwargs)
        self.samples = samples

    def forward(self, x: torch.Tensor, extras: Padding | None = None) -> tuple[torch.Tensor, Padding]:
        padding = padding_of(x, extras)
        ids = padding.ids
        y, mask, keep = self.mix_masked(self.norm(x) if self.norm_position == "pre" else x, padding.mask)
        if keep is not None:  # the residual and the ids follow the kept rows
            x = x.gather(1, keep[..., None].expand(-1, -1, x.shape[-1]))
            ids = ids.gather(1, keep)
        return self.join(self.branch(y), x), Padding(mask, ids)

    def mix_masked(self, x: torch.Tensor, mask: torch.Tensor):
        """(output of the kept rows, their mask, kept row indices or None when nothing is dropped)."""
        b, n, _ = x.shape
        heads = self.heads
        q, k, v = self.qkv_heads(x)
        dots = torch.matmul(q, k.transpose(-1, -2)) * self.scale  # vit-pytorch's order: scale after
        pair = mask[:, None, :, None] & mask[:, None, None, :]
        dots = dots.masked_fill(~pair, -torch.finfo(dots.dtype).max)
        attn = F.dropout(dots.softmax(dim=-1), self.attn_dropout, self.training)
        keep = None
        if n - 1 > self.samples:
            keep = self.sample(attn, v, mask)
            drawn = F.pad(keep != 0, (1, 0), value=True)
            keep = F.pad(keep, (1, 0), value=0)
            if torch.compiler.is_compiling():  # n is the budget of an earlier block: eager's is the widest image
                sampling = mask.sum(dim=1).max() - 1 > self.samples
                whole = torch.arange(self.samples + 1, device=keep.device).expand(b, -1)
                keep = torch.where(sampling, keep, whole)
                drawn = (drawn & sampling) | (mask[:, :self.samples + 1] & ~sampling)  # no bool Where in onnxruntime
            mask = drawn
            attn = attn.gather(2, keep[:, None, :, None].expand(b, heads, keep.shape[1], n))
        return self.merge(torch.matmul(attn, v)), mask, keep

    def sample(self, attn: torch.Tensor, v: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(B, ≤samples) distinct drawn token indices (≥ 1), ascending, right-padded with 0."""
        b, _, n, _ = attn.shape
        scores = torch.einsum("b h n, b h n -> b n", attn[..., 0, 1:], v[..., 1:, :].norm(dim=-1))
        scores = scores / (scores.sum(dim=-1, keepdim=True) + EPS)
        logits = torch.log(scores + EPS).masked_fill(~mask[:, 1:], -torch.finfo(attn.dtype).max / 2)
        noise = -torch.log(-torch.log(self.noise(b, n - 1, attn) + EPS) + EPS)
        drawn = (logits[:, None, :] + noise).argmax(dim=-1) + 1
        hit = torch.zeros(b, n, dtype=torch.bool, device=attn.device).scatter_(1, drawn, True)
        # meta tensors have no values, and a compiled graph no data-dependent sizes: both keep the most
        width = self.samples if hit.is_meta or torch.compiler.is_compiling() else int(hit.sum(dim=1).max())
        index = torch.arange(n, device=attn.device).expand(b, n)
        kept = torch.where(hit, index, n).sort(dim=1).values[:, :width]
        return kept.masked_fill(kept == n, 0)

    def noise(self, b: int, n: int, like: torch.Tensor) -> torch.Tensor:
        """(B, samples, n) uniform draws in [0, 1) for Gumbel-max: its own method, so that a test can swap in
        values that eager, exported and ONNX runs share."""
        # torch.rand draws as vit-pytorch's empty().uniform_(0, 1) does, and the ONNX exporter can translate it
        return torch.rand((b, self.samples, n), device=like.device, dtype=like.dtype)

    def extra_repr(self) -> str:
        return f"samples={self.samples}"
