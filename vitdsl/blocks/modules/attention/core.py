"""The attention core every attention module shares: heads, scale, attention dropout, the output
projection, and one kernel softmax(q·kᵀ·scale + bias) @ v, fused or explicit.

The kernel switch is per module (``explicit``), or comes from ``explicit_attention()``'s context
variable when a module has none of its own (in eager mode: torch.compile cannot read a ContextVar, so
compiled and exported graphs follow the attribute alone). A ContextVar is private to a thread and an
asyncio task, so one model recording its maps never changes how another, or another thread, attends.
"""
from __future__ import annotations

import contextlib
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from ..common import Mixer
from ..onednn import linear

Recorder = Callable[[nn.Module, torch.Tensor], None]


@dataclass(frozen=True)
class Explicit:
    """Run the explicit softmax, so FLOP counters see every product; ``record`` gets (module, weights)."""

    record: Recorder | None = None


_CONTEXT: ContextVar[Explicit | None] = ContextVar("vitdsl_explicit_attention", default=None)


@contextlib.contextmanager
def explicit_attention(record: Recorder | None = None, model: nn.Module | None = None):
    """Attend with an explicit softmax inside the block: the attention modules of ``model`` only, or,
    without a model, every attention this thread runs."""
    mode = Explicit(record)
    if model is None:
        token = _CONTEXT.set(mode)
        try:
            yield
        finally:
            _CONTEXT.reset(token)
        return
    cores = [m for m in model.modules() if isinstance(m, Attention)]
    old = [m.explicit for m in cores]
    for m in cores:
        m.explicit = mode
    try:
        yield
    finally:
        for m, prev in zip(cores, old):
            m.explicit = prev


class QVBiasLinear(nn.Module):
    """The q/k/v projection with biases on the queries and values only (BEiT, qkv_bias: qv): ``bias`` is
    theirs with zeros for the keys between, so code that reads ``weight`` and ``bias`` works unchanged."""

    def __init__(self, dim: int, widths: tuple[int, int, int]):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(sum(widths), dim))
        nn.init.kaiming_uniform_(self.weight, a=5 ** 0.5)  # nn.Linear's default
        self.q_bias, self.v_bias = nn.Parameter(torch.zeros(widths[0])), nn.Parameter(torch.zeros(widths[2]))
        self.key_width = widths[1]

    @property
    def bias(self) -> torch.Tensor:
        return torch.cat((self.q_bias, self.q_bias.new_zeros(self.key_width), self.v_bias))

    def as_linear(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The weight and bias of the Linear this is (``onednn.linear`` runs it on oneDNN)."""
        return self.weight, self.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight, self.bias)


class Attention(Mixer):
    """The shared core. Subclasses make their projections (``init_projections`` for the usual Linear
    ones), call ``attend`` on (B, heads, N, d) queries, keys and values, and may override the hooks
    ``bias``, ``mask``, ``fused``, ``prepare``, ``logits``, ``pre_softmax`` and ``post_softmax``."""

    explicit: Explicit | None = None  # this module's kernel switch; None: the context's
    takes_context = False  # whether forward(x, context=c) attends from x to c (MP3)

    def __init__(self, heads: int, dim_head: int, dim_value: int | None = None, scale: float | None = None,
                 attn_dropout: float = 0.0):
        super().__init__()
        self.heads, self.dim_head, self.dim_value = heads, dim_head, dim_value or dim_head
        self.scale = dim_head ** -0.5 if scale is None else scale
        self.attn_dropout = attn_dropout

    def init_projections(self, dim: int, qkv_bias: bool | str, out_bias: bool, project_out: bool, dropout: float,
                         qkv: bool = True) -> None:
        """``qkv`` (one Linear for queries, keys and values) unless the subclass has its own, and the
        output projection ``out`` and its dropout."""
        inner, inner_v = self.heads * self.dim_head, self.heads * self.dim_value
        self.widths = (inner, inner, inner_v)  # of q, k and v
        if qkv:
            self.qkv = QVBiasLinear(dim, self.widths) if qkv_bias == "qv" else \
                nn.Linear(dim, 2 * inner + inner_v, bias=qkv_bias)
        self.out = nn.Linear(inner_v, dim, bias=out_bias) if project_out else nn.Identity()
        self.out_drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    recompute = True

    def recomputes(self, x: torch.Tensor) -> bool:
        # only on the fused kernel: the explicit softmax's logits product would be kept, and one pass keeps none
        return super().recomputes(x) and self.fuses(type(self).bias is not Attention.bias, x.device)

    def last_weight(self) -> torch.Tensor | None:
        return self.out.weight if isinstance(self.out, nn.Linear) else None

    # -- hooks -----------------------------------------------------------------------------------
    def bias(self) -> torch.Tensor | None:
        """An additive bias of the logits (relative positions), or None."""
        return None

    def mask(self, n: int, keys: int, device) -> torch.Tensor | None:
        """The module's own boolean (n, keys) mask of who may attend to whom, or None."""
        return None

    def fused(self) -> bool:
        """Whether scaled_dot_product_attention computes what the hooks below describe."""
        return True

    def prepare(self, q: torch.Tensor, k: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return q, k

    def logits(self, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        return (q * self.scale) @ k.transpose(-2, -1)

    def pre_softmax(self, sim: torch.Tensor) -> torch.Tensor:
        return sim

    def post_softmax(self, attn: torch.Tensor) -> torch.Tensor:
        return attn

    # -- the kernel ------------------------------------------------------------------------------
    def explicit_mode(self) -> Explicit | None:
        if self.explicit is not None or torch.compiler.is_compiling():
            return self.explicit  # dynamo cannot read a ContextVar: compiled graphs follow the attribute
        return _CONTEXT.get()

    def record(self, attn: torch.Tensor) -> None:
        mode = self.explicit_mode()
        if mode is not None and mode.record is not None:
            mode.record(self, attn)

    def fuses(self, biased: bool, device: torch.device) -> bool:
        """Whether ``attend`` runs scaled_dot_product_attention (else the explicit softmax). On CPU an
        additive bias that needs a gradient sends SDPA to its math fallback, this same path plus a "safe
        softmax" pass (Swin-T's attention modules, training step at batch 16: 1.05–1.22× slower); without
        gradients its fused kernel takes a (1|B, 1|heads, n, keys) bias (torch 2.13; Swin-T eval at
        batch 8: 0.90× the explicit softmax's time, MaxViT-T's modules at batch 1: 0.97×)."""
        return self.explicit_mode() is None and self.fused() and (
            not biased or device.type != "cpu" or not torch.is_grad_enabled())

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None = None,
               bias: torch.Tensor | None = None) -> torch.Tensor:
        """softmax(q·kᵀ·scale + bias) @ v where ``mask`` (boolean, broadcast to the logits) and the
        module's own mask allow; ``bias`` is added to the module's own."""
        q, k = self.prepare(q, k)
        own_bias = self.bias()
        bias = own_bias if bias is None else bias if own_bias is None else bias + own_bias
        own = self.mask(q.shape[-2], k.shape[-2], q.device)
        mask = own if mask is None else mask if own is None else mask & own
        if self.fuses(bias is not None, q.device):
            p = self.attn_dropout if self.training else 0.0
            if bias is not None and bias.dim() < q.dim():  # the fused CPU kernel takes 2-d or 4-d masks only
                bias = bias[(None,) * (q.dim() - bias.dim())]
            if bias is not None and mask is not None:
                bias = bias.masked_fill(~mask, -torch.finfo(bias.dtype).max)
            return F.scaled_dot_product_attention(q, k, v, attn_mask=mask if bias is None else bias, dropout_p=p,
                                                  scale=self.scale)
        sim = self.logits(q, k)
        if bias is not None:
            sim = sim + bias
        if mask is not None:
            sim = sim.masked_fill(~mask, -torch.finfo(sim.dtype).max)
        attn = self.pre_softmax(sim).softmax(dim=-1)
        self.record(attn)
        attn = F.dropout(attn, self.attn_dropout, self.training)
        return self.post_softmax(attn) @ v

    def split(self, t: torch.Tensor) -> torch.Tensor:
        return rearrange(t, "b n (h d) -> b h n d", h=self.heads)

    def output(self, out: torch.Tensor, residual: torch.Tensor | None = None) -> torch.Tensor:
        """The output projection and its dropout, on channels-last outputs; ``residual`` added in the
        projection (``Mixer.adds_residual``)."""
        return self.out_drop(linear(out, self.out, residual=residual))

    def merge(self, out: torch.Tensor, residual: torch.Tensor | None = None) -> torch.Tensor:
        """(B, heads, N, d) → (B, N, heads·d), projected. Torch ops, not einops: it runs once per block
        and layer, and einops' per-call overhead showed on small models (tiny ViT 4.1 → 4.3 ms)."""
        return self.output(out.transpose(1, 2).flatten(2), residual)
