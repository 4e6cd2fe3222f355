"""Adaptive token sampling (``sampling-attn``, vit-pytorch's ``ats_vit``): global attention that then
keeps the class token and the tokens drawn by the class token's attention, as padded tokens.

The sampling reproduces vit-pytorch op for op, random draws included, so that with the same seed
the same tokens are kept: a one-ulp difference in the scores could flip a Gumbel-max draw.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..padded import PaddedTokens, unpad
from .numerics import SelfAttention

EPS = 1e-6  # vit-pytorch's, in the score normalisation, the log and the Gumbel noise


class SamplingAttention(SelfAttention):
    """Pre-softmax-masked global attention; then, when more than ``samples`` tokens follow the class
    token, Gumbel-max sampling of the tokens to keep. Returns PaddedTokens."""

    def __init__(self, samples: int, **kwargs):
        super().__init__(**kwargs)
        self.samples = samples

    def forward(self, x: torch.Tensor) -> PaddedTokens:
        x, mask, ids = unpad(x)
        y, mask, keep = self.mix_masked(self.norm(x) if self.norm_position == "pre" else x, mask)
        if keep is not None:  # the residual and the ids follow the kept rows
            x = x.gather(1, keep[..., None].expand(-1, -1, x.shape[-1]))
            ids = ids.gather(1, keep)
        return PaddedTokens.wrap(self.join(self.branch(y), x), mask, ids)

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
            mask = F.pad(keep != 0, (1, 0), value=True)
            keep = F.pad(keep, (1, 0), value=0)
            attn = attn.gather(2, keep[:, None, :, None].expand(b, heads, keep.shape[1], n))
        return self.merge(torch.matmul(attn, v)), mask, keep

    def sample(self, attn: torch.Tensor, v: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(B, ≤samples) distinct drawn token indices (≥ 1), ascending, right-padded with 0."""
        b, _, n, _ = attn.shape
        scores = torch.einsum("b h n, b h n -> b n", attn[..., 0, 1:], v[..., 1:, :].norm(dim=-1))
        scores = scores / (scores.sum(dim=-1, keepdim=True) + EPS)
        logits = torch.log(scores + EPS).masked_fill(~mask[:, 1:], -torch.finfo(attn.dtype).max / 2)
        noise = torch.empty((b, self.samples, n - 1), device=attn.device, dtype=attn.dtype).uniform_(0, 1)
        noise = -torch.log(-torch.log(noise + EPS) + EPS)
        drawn = (logits[:, None, :] + noise).argmax(dim=-1) + 1
        hit = torch.zeros(b, n, dtype=torch.bool, device=attn.device).scatter_(1, drawn, True)
        # meta tensors have no values: shape-tracing takes the most that can be kept
        width = self.samples if hit.is_meta else int(hit.sum(dim=1).max())
        index = torch.arange(n, device=attn.device).expand(b, n)
        kept = torch.where(hit, index, n).sort(dim=1).values[:, :width]
        return kept.masked_fill(kept == n, 0)

    def extra_repr(self) -> str:
        return f"samples={self.samples}"
