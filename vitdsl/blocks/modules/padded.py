"""Padded token sequences: what a block that keeps a data-dependent number of tokens per image gives
(adaptive token sampling, ``sampling-attn``), and what every block that takes them reads.

Padding convention: such a block returns ``PaddedTokens``, an ordinary (B, N, D) tensor that also
carries ``mask`` (B, N), False on the padding rows at the right end, and ``ids`` (B, N), the index of
each row in the sequence that entered the first sampling block. It is still one tensor on one graph
edge, so the graph, the compiled network and the summary need nothing new. Any op whose result keeps
the (B, N) leading sizes of a 3-D input (norm, linear, activation, dropout, the residual add: every
per-token block) returns PaddedTokens with the same mask and ids; anything else (``x[:, 0]``) gives a
plain tensor. Its own module, below attention and the blocks that read padding, so none of them
depends on another to know the convention.
"""
from __future__ import annotations

import torch
from torch.utils._pytree import tree_leaves, tree_map_only


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


def padding_keys(x: torch.Tensor) -> torch.Tensor | None:
    """(B, N) True on the real rows of padded tokens, None for plain ones: no token may attend to
    padding, or an image's result would depend on the others in its batch."""
    return x.mask if isinstance(x, PaddedTokens) else None
