"""Adaptive token sampling (vit-pytorch's ``ats_vit``), and the padded token sequences it makes.

Padding convention: a block that keeps a data-dependent number of tokens per image returns
``PaddedTokens``, an ordinary (B, N, D) tensor that also carries ``mask`` (B, N), False on the
padding rows at the right end, and ``ids`` (B, N), the index of each row in the sequence that
entered the first sampling block. It is still one tensor on one graph edge, so the graph, the
compiled network and the summary need nothing new. Any op whose result keeps the (B, N) leading
sizes of a 3-D input (norm, linear, activation, dropout, the residual add: every per-token block)
returns PaddedTokens with the same mask and ids; anything else (``x[:, 0]``) gives a plain tensor.

The sampling reproduces vit-pytorch op for op, random draws included, so that with the same seed
the same tokens are kept: a one-ulp difference in the scores could flip a Gumbel-max draw.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.utils._pytree import tree_leaves, tree_map_only

from .attention import TokenAttention

EPS = 1e-6  # vit-pytorch's, in the score normalisation, the log and the Gumbel noise


class PaddedTokens(torch.Tensor):
    """(B, N, D) tokens with a padding ``mask`` (B, N) and source ``ids`` (B, N)."""

    mask: torch.Tensor
    ids: torch.Tensor

    @staticmethod
    def wrap(x: torch.Tensor, mask: torch.Tensor, ids: torch.Tensor) -> "PaddedTokens":
        out = x.as_subclass(PaddedTokens)
        out.mask, out.ids = mask, ids
        return out

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        with torch._C.DisableTorchFunctionSubclass():
            out = func(*args, **kwargs)
            src = next((a for a in tree_leaves((args, kwargs)) if isinstance(a, PaddedTokens)), None)
            if src is None:
                return out
            lead = src.shape[:2]

        def keep(t: torch.Tensor) -> torch.Tensor:
            if isinstance(t, PaddedTokens) or t.dim() != 3 or t.shape[:2] != lead:
                return t
            return PaddedTokens.wrap(t, src.mask, src.ids)

        return tree_map_only(torch.Tensor, keep, out)


def unpad(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(plain tokens, mask, ids); a plain (B, N, D) input has no padding and ids 0..N-1."""
    if isinstance(x, PaddedTokens):
        with torch._C.DisableTorchFunctionSubclass():
            return x.as_subclass(torch.Tensor), x.mask, x.ids
    b, n, _ = x.shape
    mask = torch.ones(b, n, dtype=torch.bool, device=x.device)
    return x, mask, torch.arange(n, device=x.device).expand(b, n)


class SamplingAttention(TokenAttention):
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


class TokenIds(torch.nn.Module):
    """Source index of each token after the first ``prefix``, minus ``prefix``; −1 on padding."""

    def __init__(self, prefix: int):
        super().__init__()
        self.prefix = prefix

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, mask, ids = unpad(x)
        p = self.prefix
        return (ids[:, p:] - p).masked_fill(~mask[:, p:], -1)
