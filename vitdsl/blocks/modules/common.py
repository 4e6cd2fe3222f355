"""Pieces every block module shares: norms, activations, drop path and the residual mixer."""
from __future__ import annotations

from functools import partial

import torch
from torch import nn

from .onednn import cpu_inference
from .recompute import may_recompute, recomputed


def randn(*shape: int, std: float = 1.0) -> torch.Tensor:
    """``torch.randn(shape) * std``, the same draw; on the meta device (the summary's trace) an empty tensor
    instead: there randn and the product run Python reference kernels whose first call imports torch._dynamo,
    about 2 s of a summary spent on values nobody reads."""
    if torch.get_default_device().type == "meta":
        return torch.empty(shape)
    return torch.randn(shape) * std if std != 1.0 else torch.randn(shape)


ACTIVATIONS = {"gelu": nn.GELU, "gelu-tanh": partial(nn.GELU, approximate="tanh"), "relu": nn.ReLU, "silu": nn.SiLU,
               "hardswish": nn.Hardswish, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid}


def make_act(name: str | None) -> nn.Module | None:
    return None if name in (None, "none") else ACTIVATIONS[name]()


PAPER_EPS = 1e-6  # layer and rms norms in the papers' code (ViT, DeiT, CaiT, XCiT, ...) and timm
BATCH_EPS = 1e-5  # batch norms keep PyTorch's


def norm_eps(kind: str | None, eps: float | None) -> float:
    """The epsilon a ``kind`` norm uses for the field value ``eps`` (None: the paper default)."""
    if eps is not None:
        return eps
    return BATCH_EPS if kind == "batch" else PAPER_EPS


def make_norm(kind: str | None, dim: int, eps: float | None = None) -> nn.Module | None:
    """A norm over the last dimension."""
    if kind in (None, "none"):
        return None
    e = norm_eps(kind, eps)
    if kind == "layer":
        return nn.LayerNorm(dim, eps=e)
    if kind == "layer-nobias":
        return nn.LayerNorm(dim, eps=e, bias=False)
    if kind == "rms":
        return nn.RMSNorm(dim, eps=e)
    if kind == "batch":
        return BatchNormLast(dim, eps=e)
    if kind == "l2":
        return L2Norm()
    raise ValueError(f"unknown norm {kind!r}")


class L2Norm(nn.Module):
    """Divide by the Euclidean length of the last dimension (at least ``eps``)."""

    def __init__(self, eps: float = 1e-6):
        super().__init__()
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.normalize(x, dim=-1, eps=self.eps)

    def extra_repr(self) -> str:
        return f"eps={self.eps}"


class BatchNormLast(nn.BatchNorm1d):
    """BatchNorm over the last dimension of (..., D) tensors."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        return super().forward(x.reshape(-1, shape[-1])).view(shape)


class FeatureNorm(nn.Module):
    """A norm over features; on feature maps (B, C, H, W) over the channels of each position."""

    def __init__(self, kind: str, dim: int, channels_first: bool = False, eps: float | None = None):
        super().__init__()
        self.channels_first = channels_first
        if channels_first and kind == "batch":
            self.norm = nn.BatchNorm2d(dim, eps=norm_eps(kind, eps))
            self.channels_first = False  # BatchNorm2d already normalises channels of (B, C, H, W)
        else:
            self.norm = make_norm(kind, dim, eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels_first:
            return self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        return self.norm(x)


class DropPath(nn.Module):
    """Stochastic depth: drop a sample's whole residual branch while training."""

    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(1 - self.p)
        return x * keep / (1 - self.p)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class Mixer(nn.Module):
    """A residual block around ``self.mix``, with the placement options of ``MixerSpec``.

    Subclasses call ``init_mixer`` and define ``mix(x)`` on (..., D) tensors; the norm, the
    layer scale (``gamma``) and the drop path live here, once.
    """

    def init_mixer(self, dim: int, norm: str, norm_type: str, residual: bool, layer_scale: float | None,
                   drop_path: float, norm_eps: float | None = None) -> None:
        self.norm_position = norm
        self.norm = make_norm(norm_type, dim, norm_eps) if norm != "none" else None
        self.residual = residual
        self.gamma = nn.Parameter(torch.full((dim,), float(layer_scale))) if layer_scale is not None else None
        self.drop_path = DropPath(drop_path) if drop_path > 0 else None

    channels_first = False  # True when f(x) is a (B, C, H, W) map, so the layer scale broadcasts per channel

    # in training, keep for backward only what matrix products give and recompute the rest (recompute.py);
    # the blocks that gain from it turn it on, and their modules whose recomputation is more than a norm and one
    # activation (a gate, RoPE) turn it off again. ``MLP.recompute = False`` turns it off for every MLP, the same
    # on a module for that block (``True`` there: on, for a gated MLP too).
    recompute = False

    # whether ``mix(x, residual=r)`` adds ``r`` in its last matrix product (onednn.py), set by the blocks
    # whose last op is a Linear
    adds_in_product = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.recomputes(x):
            return self.join(self.branch(self.recomputed_mix(x)), x)
        if self.adds_residual(x):
            return self.mix(self.norm(x) if self.norm_position == "pre" else x, residual=x)
        return self.join(self.branch(self.normed_mix(x)), x)

    def adds_residual(self, x: torch.Tensor) -> bool:
        """Whether ``mix`` adds the residual itself: in CPU inference, a residual block with nothing between
        the last product and the add (no layer scale, no post norm; drop path is off in eval mode), eager or
        compiled (``onednn.linear`` adds it as PyTorch's ops would where its product is not oneDNN's)."""
        return (self.adds_in_product and self.residual and self.norm_position != "post" and self.gamma is None
                and cpu_inference(self, x))

    def normed_mix(self, x: torch.Tensor) -> torch.Tensor:
        """f(x): the pre norm, if any, and ``mix``."""
        return self.mix(self.norm(x) if self.norm_position == "pre" else x)

    def recomputes(self, x: torch.Tensor) -> bool:
        """Whether a call on ``x`` recomputes: ``recompute`` is on, and autograd records the call, in eager mode,
        with no hook inside the block (``recompute.may_recompute``)."""
        return self.recompute and may_recompute(self, x)

    def recomputed_mix(self, x: torch.Tensor) -> torch.Tensor:
        """``normed_mix(x)`` in training, recomputing in backward (recompute.py)."""
        return recomputed(self.normed_mix, x, self.last_weight())

    def last_weight(self) -> torch.Tensor | None:
        """The weight of ``mix``'s last matrix product, whose output the recomputation need not keep."""
        return None

    def branch(self, y: torch.Tensor) -> torch.Tensor:
        """Layer scale and drop path on the block's output f(x)."""
        if self.gamma is not None:
            y = y * (self.gamma[:, None, None] if self.channels_first else self.gamma)
        if self.drop_path is not None:
            y = self.drop_path(y)
        return y

    def join(self, y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """The residual and a post norm."""
        if self.residual:
            y = y + x
        if self.norm_position == "post":
            y = self.norm(y)
        return y
