"""Extras: the side values that travel next to a (B, N, D) token tensor on a graph edge, and the
padding that adaptive token sampling (``sampling-attn``) leaves.

A module takes part in three ways, each decided once when the network is compiled, never per call:

- it GIVES extras when its class sets ``gives_extras = True``: its forward returns ``(tokens, extras)``
  (the packing patchify of NaViT, ``sampling-attn``);
- it READS them when its class sets ``reads_extras = True``: its forward takes ``extras=`` (None:
  plain tokens), given whenever its input edge carries some (attention that must not attend to
  padding or across images, the pools, ``token-ids``, ``token-merge``, factorized positions);
- the extras PASS from its input to its output when the graph's shapes say the output keeps the
  input's tokens (the same token count, a block that does not drop padding: ``mlp``, ``norm``,
  residual blocks); anywhere else they stop.

Plain tensors are all a module ever returns besides, so ``torch.export``, the ONNX exporter and
``torch.compile`` see ordinary tensors (see ``graph/network.py`` for the plan).

Padding convention: ``Padding.mask`` (B, N) is False on the padding rows at the right end; ``ids``
(B, N) is the index of each row in the sequence that entered the first sampling block.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch


def gives_extras(module: torch.nn.Module) -> bool:
    """Whether the module's forward returns (tokens, extras)."""
    return bool(getattr(module, "gives_extras", False))


def reads_extras(module: torch.nn.Module) -> bool:
    """Whether the module's forward takes ``extras=``."""
    return bool(getattr(module, "reads_extras", False))


@dataclass(eq=False)
class Padding:
    """The padding of (B, N, D) tokens: ``mask`` (B, N) False on padding, source ``ids`` (B, N)."""

    mask: torch.Tensor
    ids: torch.Tensor


def padding_of(x: torch.Tensor, extras: Padding | None) -> Padding:
    """The padding of x: ``extras``, or for plain (B, N, D) tokens none, with ids 0..N-1."""
    if extras is not None:
        return extras
    b, n, _ = x.shape
    return Padding(torch.ones(b, n, dtype=torch.bool, device=x.device), torch.arange(n, device=x.device).expand(b, n))


def padding_keys(extras: Padding | None) -> torch.Tensor | None:
    """(B, N) True on the real rows of padded tokens, None for plain ones: no token may attend to
    padding, or an image's result would depend on the others in its batch."""
    return extras.mask if isinstance(extras, Padding) else None
