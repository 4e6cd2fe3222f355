"""Depthwise-separable self-attention (SepViT's DSSA): attention within windows, then across them.

A block of its own rather than a ``local-attn`` option: its second step is an attention whose
sequence is the windows themselves (queries and keys from learned window tokens, each value a whole
window's output), with weights of its own; local-attn's per-window options (a relative position
table, head mixing) have no meaning there.
"""
from __future__ import annotations

from typing import Literal

from pydantic import Field, PositiveInt, model_validator

from .attention import AttentionSpec, LocalAttn
from .base import linear_params, register
from .shape import Shape


@register
class SeparableAttn(AttentionSpec):
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
    takes = ("image",)
    family = "attention"

    partition: Literal["block", "grid"] = Field("block", description="block: contiguous windows; "
                                                "grid: dilated windows that span the whole map.")
    window: PositiveInt = Field(7, description="Window side w: the depthwise step runs over w×w tokens.")
    dim_head: PositiveInt | None = Field(32, description="Width of one head. When unset: width / heads.")
    windows: PositiveInt | None = Field(None, description="Instead of window: the number of windows along each "
                                        "side, so a window covers (height/n)×(width/n) tokens.")

    window_size = LocalAttn.window_size  # same windows, same errors

    @model_validator(mode="after")
    def _plain(self):
        if self.heads is None and self.dim_head is None:
            raise ValueError("set heads or dim_head")
        if self.windows is not None and "window" in self.model_fields_set:
            raise ValueError("set window (the window side) or windows (how many per side), not both")
        if (self.memories or self.task_tokens or self.head_mix != "none" or self.temperature != "fixed"
                or self.mask_self):
            raise ValueError("separable-attn takes no memories, task_tokens, head_mix, temperature or mask_self: "
                             "both of its steps use the plain attention core")
        return self

    def groups(self, x: Shape) -> tuple[int, int, int]:
        """(windows, tokens per window, heads · dim_head) on this map."""
        _, h, w = x.dims
        wh, ww = self.window_size(x)
        heads, dim_head = self.geometry(x.features)
        return (h // wh) * (w // ww), wh * ww, heads * dim_head

    def infer(self, x: Shape) -> Shape:
        self.groups(x)
        return x

    def count_params(self, x: Shape) -> int:
        _, dim_head = self.geometry(x.features)
        _, _, inner = self.groups(x)
        # window token, and LayerNorm(dim_head) + Linear(inner → 2·inner) for the window queries/keys
        return self.attention_params(x.features, x.features + 2 * dim_head + linear_params(inner, 2 * inner))

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
        wh, ww = self.window_size(x)
        g, _, _ = self.groups(x)
        across = "window tokens, cross-window" if g > 1 else "window token, one window"
        return f"{kind} {wh}×{ww} + {across}"

    def build(self, x: Shape):
        from .modules.separable_attention import SeparableAttention

        g, _, _ = self.groups(x)
        return SeparableAttention(partition=self.partition, window=self.window_size(x), groups=g,
                                  **self.attention_kwargs(x.features))
