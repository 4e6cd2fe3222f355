"""Depthwise-separable self-attention (SepViT's DSSA): attention within windows, then across them.

A block of its own rather than a ``local-attn`` option: its second step is an attention whose
sequence is the windows themselves (queries and keys from learned window tokens, each value a whole
window's output), with weights of its own; local-attn's per-window options (a relative position
table, head mixing) have no meaning there.
"""
from __future__ import annotations

from pydantic import Field, PositiveInt

from .attention import Windows
from .base import linear_params, register
from .shape import Shape


@register
class SeparableAttn(Windows):
    """Window attention with a window token, then attention across the windows (SepViT's DSSA).

    Depthwise step: a learned window token (one vector shared by all windows) joins each window's
    tokens and self-attention runs within the window. Pointwise step: each window token's head outputs
    go through LayerNorm(dim_head) → GELU → Linear(inner → 2·inner) and give that window a query and a
    key per head; the windows attend to each other, the value of a window being its whole depthwise
    output (all its tokens), so every token is updated by a mix of the windows at the same position.
    With a single window the pointwise step is skipped. Then the output projection and the residual.
    Takes and gives a feature map (C, H, W).
    """

    block = "separable-attn"
    capabilities = frozenset({"attention"})
    takes = ("image",)
    family = "attention"

    window: PositiveInt = Field(7, description="Window side w: the depthwise step runs over w×w tokens.")
    attn_dropout: float = Field(0.0, ge=0, lt=1, description="Dropout on the attention weights of both steps.")

    def groups(self, x: Shape) -> tuple[int, int, int]:
        """(windows, tokens per window, heads · dim_head) on this map."""
        _, h, w = x.dims
        wh, ww = self.map_window_size(x)
        heads, dim_head = self.geometry(x.features)
        return (h // wh) * (w // ww), wh * ww, heads * dim_head

    def infer(self, x: Shape) -> Shape:
        self.groups(x)
        return x

    def count_params(self, x: Shape) -> int:
        c = x.features
        _, dim_head = self.geometry(c)
        _, _, inner = self.groups(x)
        n = linear_params(c, 3 * inner, self.qkv_bias) + self.mixer_params(c)
        n += linear_params(inner, c, self.out_bias) if self.projects_out(c) else 0
        # the window token, and LayerNorm(dim_head) + Linear(inner → 2·inner) for the window queries/keys
        return n + c + 2 * dim_head + linear_params(inner, 2 * inner)

    def flops(self, x: Shape) -> int:
        c = x.features
        g, n, inner = self.groups(x)
        # depthwise: qkv, logits and values over n + 1 tokens per window; the output projection of the n
        depthwise = g * (2 * (n + 1) * c * 3 * inner + 4 * (n + 1) ** 2 * inner)
        out = 2 * g * n * inner * c if self.projects_out(c) else 0
        # pointwise: window queries/keys, (g × g) logits, and g values of n · dim_head per head
        pointwise = 2 * g * inner * 2 * inner + 2 * g * g * inner * (1 + n) if g > 1 else 0
        return depthwise + out + pointwise

    def pattern(self, x: Shape) -> str:
        kind = "window" if self.partition == "block" else "grid"
        wh, ww = self.map_window_size(x)
        g, _, _ = self.groups(x)
        across = "window tokens, cross-window" if g > 1 else "window token, one window"
        return f"{kind} {wh}×{ww} + {across}"

    def build(self, x: Shape):
        from .modules.separable_attention import SeparableAttention

        c = x.features
        g, _, _ = self.groups(x)
        heads, dim_head = self.geometry(c)
        return SeparableAttention(partition=self.partition, window=self.map_window_size(x), groups=g, dim=c,
                                  heads=heads,
                                  dim_head=dim_head, qkv_bias=self.qkv_bias, out_bias=self.out_bias,
                                  project_out=self.projects_out(c), attn_dropout=self.attn_dropout,
                                  dropout=self.dropout, **self.mixer_kwargs())
