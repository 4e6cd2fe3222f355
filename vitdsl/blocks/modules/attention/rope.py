"""Rotary position embedding over a 2-D patch grid: axial (EVA-02's, as timm's ``RotaryEmbeddingCat`` builds it) and
mixed (RoPE-Mixed's learned frequencies, Heo et al., 2024, as timm's ``RotaryEmbeddingMixed``)."""
from __future__ import annotations

import math
import weakref

import torch
from torch import nn

# The tables of the axial ropes alive, by their arguments: the blocks of a model (and models alike) share
# one pair of tensors, as timm's one rope module does (EVA02-T: 1.4 MiB less), while each block keeps
# its own buffers, so deepcopy, pickle and export see ordinary modules (which keep one copy of a shared
# tensor). The tables are constants, never written in place; .to() and .half() give each block its own.
# Weak values: the tables go with the last model that holds them.
_TABLES: weakref.WeakValueDictionary = weakref.WeakValueDictionary()


def _complex_view(t: torch.Tensor) -> bool:
    """Whether ``t``'s channel pairs can be read as complex numbers in place (``view_as_complex``)."""
    return t.stride(-1) == 1 and t.storage_offset() % 2 == 0 and all(s % 2 == 0 for s in t.stride()[:-1])


def turn(t: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, prefix: int) -> torch.Tensor:
    """``t`` (..., prefix + n, d) with each channel pair (x0, x1) of its last n rows turned by its angle:
    (x0·cos − x1·sin, x1·cos + x0·sin), the (..., n, d) tables holding each pair's cosine and sine twice.

    As a complex product where it can be (float32 and float64, eager, on the CPU or a CUDA device): one pass
    over ``t`` where the real form makes six, with the same products and sums (EVA-02-T's queries at batch 8:
    42 µs against 300 µs). On the CPU that is timm's result bit for bit where the kernel runs vectorized
    (heads of 16 channels and more), a rounding apart in its scalar tail. Compilers and exporters, which
    handle complex tensors poorly or not at all (ONNX), get the real form, timm's."""
    if (t.dtype in (torch.float32, torch.float64) and t.device.type in ("cpu", "cuda")
            and not (torch.compiler.is_compiling() or torch.jit.is_tracing())):
        turns = torch.complex(cos[..., ::2], sin[..., ::2])
        if prefix:
            turns = torch.cat([turns.new_ones(*turns.shape[:-2], prefix, turns.shape[-1]), turns], dim=-2)
        pairs = torch.view_as_complex((t if _complex_view(t) else t.contiguous()).unflatten(-1, (-1, 2)))
        return torch.view_as_real(pairs * turns).flatten(-2)
    return real_turn(t, cos, sin, prefix)


def real_turn(t: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, prefix: int) -> torch.Tensor:
    """``turn`` in real arithmetic, as timm writes it."""
    head, x = t[..., :prefix, :], t[..., prefix:, :]
    turned = torch.stack([-x[..., 1::2], x[..., ::2]], -1).reshape(x.shape)  # (x0, x1) → (-x1, x0)
    return torch.cat([head, x * cos + turned * sin], dim=-2)


class AxialRope(nn.Module):
    """Turns each adjacent channel pair (2i, 2i+1) of a head by an angle: the first half of the channels by the
    patch's row times a frequency, the second half by its column (``columns_first``: the other way round, as
    RoPE-ViT's). ``prefix`` leading tokens are left as they are. The sines and cosines are a table computed once
    (a buffer outside the state_dict, as timm's), shared by the ropes alike (``_TABLES``)."""

    def __init__(self, dim_head: int, grid: tuple[int, int], prefix: int, ref: int | None, theta: float,
                 columns_first: bool = False):
        super().__init__()
        self.prefix = prefix
        # where the tables go (a default device: meta, say) and inference tensors are not to be shared
        key = (dim_head, tuple(grid), ref, theta, columns_first, torch.empty(0).device,
               torch.is_inference_mode_enabled())
        sin, cos = _TABLES.get((key, "sin")), _TABLES.get((key, "cos"))
        if sin is None or cos is None:
            sin, cos = self.table(dim_head, grid, ref, theta, columns_first)
            _TABLES[key, "sin"], _TABLES[key, "cos"] = sin, cos
        self.register_buffer("sin", sin, persistent=False)
        self.register_buffer("cos", cos, persistent=False)

    @staticmethod
    def table(dim_head: int, grid: tuple[int, int], ref: int | None, theta: float,
              columns_first: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """The (H·W, d) sines and cosines."""
        bands = dim_head // 4
        # the float32 operations in timm's order, so that its tables and ours agree bit for bit
        freqs = 1.0 / theta ** (torch.arange(bands, dtype=torch.int64).to(torch.float32) / bands)
        axes = [torch.arange(s, dtype=torch.int64).to(torch.float32) for s in grid]
        if ref is not None:
            axes = [t / s * ref for t, s in zip(axes, grid)]
        rows_cols = torch.stack(torch.meshgrid(axes, indexing="ij"), dim=-1)  # (H, W, 2)
        if columns_first:
            rows_cols = rows_cols.flip(-1)
        angles = (rows_cols.unsqueeze(-1) * freqs).flatten(-2).flatten(0, -2)  # (H·W, d/2): rows', then columns'
        return angles.sin().repeat_interleave(2, -1), angles.cos().repeat_interleave(2, -1)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        """(B, heads, prefix + H·W, d) → the same, the patch tokens rotated; or the first rows of it (queries
        of the leading tokens only, ``TokenAttention``'s rows)."""
        n = t.shape[-2] - self.prefix
        return t if n <= 0 else turn(t, self.cos[:n], self.sin[:n], self.prefix)


class MixedRope(nn.Module):
    """RoPE-Mixed (Heo et al., 2024): channel pair k of head h turns by row · f0[h, k] + column · f1[h, k], with
    frequencies learned per head and pair (``freqs`` (2, heads, d/2): [0] the rows', [1] the columns', or with
    ``columns_first`` the other way round, as RoPE-ViT's), so a head can turn along any direction of the grid.
    Drawn as the paper's code: the axial magnitudes theta^(-4j/d), j < d/4, turned by one random angle a per
    head, f0 = |f|·(cos a, cos(a + π/2)) and f1 = |f|·(sin a, sin(a + π/2)) over the two halves of the pairs.
    ``prefix`` leading tokens are left as they are. The angles are recomputed from the frequencies at every call
    (they are learned)."""

    def __init__(self, dim_head: int, heads: int, grid: tuple[int, int], prefix: int, theta: float,
                 columns_first: bool = False):
        super().__init__()
        self.prefix = prefix
        magnitude = 1.0 / theta ** (torch.arange(0, dim_head, 4, dtype=torch.float32) / dim_head)  # (d/4,)
        angle = torch.rand(heads, 1) * 2 * math.pi
        f0 = torch.cat([magnitude * torch.cos(angle), magnitude * torch.cos(angle + math.pi / 2)], dim=-1)
        f1 = torch.cat([magnitude * torch.sin(angle), magnitude * torch.sin(angle + math.pi / 2)], dim=-1)
        self.freqs = nn.Parameter(torch.stack([f0, f1]))  # (2, heads, d/2)
        rows, cols = torch.meshgrid(*(torch.arange(s, dtype=torch.int64).to(torch.float32) for s in grid),
                                    indexing="ij")
        first, second = (cols, rows) if columns_first else (rows, cols)
        self.register_buffer("first", first.flatten(), persistent=False)  # (H·W,), patches row-major
        self.register_buffer("second", second.flatten(), persistent=False)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        """(B, heads, prefix + H·W, d) → the same, the patch tokens rotated by their head's own angles; or the
        first rows of it."""
        n = max(t.shape[-2] - self.prefix, 0)
        # the first coordinate's part plus the second's, in timm's order, so that the angles agree bit for bit
        angles = self.first[:n].unsqueeze(-1) * self.freqs[0].unsqueeze(-2) + self.second[:n].unsqueeze(
            -1) * self.freqs[1].unsqueeze(-2)  # (heads, H·W, d/2)
        sin, cos = angles.sin().repeat_interleave(2, -1), angles.cos().repeat_interleave(2, -1)
        return t if n == 0 else turn(t, cos, sin, self.prefix)


def build_rope(dim_head: int, kind: str = "axial", **table) -> nn.Module:
    """The rotation ``kind`` (axial or mixed) with its table's arguments, as ``rope_kwargs`` gives them."""
    return MixedRope(dim_head, **table) if kind == "mixed" else AxialRope(dim_head, **table)
