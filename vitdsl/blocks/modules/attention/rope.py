"""Rotary position embedding over a 2-D patch grid (EVA-02's, as timm's ``RotaryEmbeddingCat`` builds it)."""
from __future__ import annotations

import torch
from torch import nn


class AxialRope(nn.Module):
    """Turns each adjacent channel pair (2i, 2i+1) of a head by an angle: the first half of the channels by the
    patch's row times a frequency, the second half by its column. ``prefix`` leading tokens are left as they
    are. The sines and cosines are a table computed once (a buffer outside the state_dict, as timm's)."""

    def __init__(self, dim_head: int, grid: tuple[int, int], prefix: int, ref: int | None, theta: float):
        super().__init__()
        self.prefix = prefix
        bands = dim_head // 4
        # the float32 operations in timm's order, so that its tables and ours agree bit for bit
        freqs = 1.0 / theta ** (torch.arange(bands, dtype=torch.int64).to(torch.float32) / bands)
        axes = [torch.arange(s, dtype=torch.int64).to(torch.float32) for s in grid]
        if ref is not None:
            axes = [t / s * ref for t, s in zip(axes, grid)]
        rows_cols = torch.stack(torch.meshgrid(axes, indexing="ij"), dim=-1)  # (H, W, 2)
        angles = (rows_cols.unsqueeze(-1) * freqs).flatten(-2).flatten(0, -2)  # (H·W, d/2): rows', then columns'
        self.register_buffer("sin", angles.sin().repeat_interleave(2, -1), persistent=False)
        self.register_buffer("cos", angles.cos().repeat_interleave(2, -1), persistent=False)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        """(B, heads, prefix + H·W, d) → the same, the patch tokens rotated."""
        head, x = t[..., :self.prefix, :], t[..., self.prefix:, :]
        turned = torch.stack([-x[..., 1::2], x[..., ::2]], -1).reshape(x.shape)  # (x0, x1) → (-x1, x0)
        return torch.cat([head, x * self.cos + turned * self.sin], dim=-2)
