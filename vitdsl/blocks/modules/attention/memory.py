"""Global attention with learned memories and isolated task tokens (``memory-attn``, learnable-memory ViT)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..common import randn
from .tokens import TokenAttention


class MemoryAttention(TokenAttention):
    """``memories``: learned tokens appended to the keys and values; ``task_tokens``: the first n tokens
    see everything, the others only each other."""

    def __init__(self, memories: int, task_tokens: int, **kwargs):
        super().__init__(**kwargs)
        self.memories = nn.Parameter(randn(memories, kwargs["dim"])) if memories else None
        self.task_tokens = task_tokens

    def mask(self, n: int, keys: int, device) -> torch.Tensor | None:
        if not self.task_tokens:
            return None
        t = self.task_tokens
        allowed = torch.zeros(n, keys, dtype=torch.bool, device=device)
        allowed[:t] = True
        allowed[t:, t:n] = True
        return allowed

    def more_keys(self, x: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.memories is None:
            return k, v
        inner = self.widths[0]
        kv_bias = self.qkv.bias[inner:] if self.qkv.bias is not None else None
        mk, mv = F.linear(self.memories, self.qkv.weight[inner:], kv_bias).split(self.widths[1:], dim=-1)
        k = torch.cat((k, self.split(mk.expand(x.shape[0], -1, -1))), dim=2)
        v = torch.cat((v, self.split(mv.expand(x.shape[0], -1, -1))), dim=2)
        return k, v
