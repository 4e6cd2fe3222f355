from __future__ import annotations

import torch
from torch import nn

from .common import make_act, make_norm
from .padded import Padding, padding_keys


class Pool(nn.Module):
    reads_extras = True  # padding rows must not count: an image's result would depend on its batch

    def __init__(self, mode: str, kind: str, dim: int | None = None, index: int = 0, suffix: int = 0,
                 prefix: int = 0):
        super().__init__()
        self.mode, self.kind, self.index, self.suffix = mode, kind, index, suffix
        self.prefix = prefix  # leading tokens mean leaves out (over: patches)
        self.score = nn.Linear(dim, 1) if mode == "seq" else None

    def forward(self, x: torch.Tensor, extras: Padding | None = None) -> torch.Tensor:
        mask = padding_keys(extras)
        if self.mode == "last":
            return x[:, -1]
        if self.suffix:
            x = x[:, :-self.suffix]
        if self.prefix:
            x, mask = x[:, self.prefix:], None if mask is None else mask[:, self.prefix:]
        if self.score is not None:
            if self.kind == "image":
                x = x.flatten(2).transpose(1, 2)
            scores = self.score(x).squeeze(-1)
            if mask is not None:
                scores = scores.masked_fill(~mask, float("-inf"))
            return (scores.softmax(dim=1).unsqueeze(1) @ x).squeeze(1)
        if self.kind == "image":
            return x.mean(dim=(2, 3))
        if self.mode == "cls":
            return x[:, self.index]
        if mask is not None:
            return (x * mask[..., None]).sum(dim=1) / mask.sum(dim=1, keepdim=True)
        return x.mean(dim=1)

    def extra_repr(self) -> str:
        return self.mode


class Head(nn.Module):
    def __init__(self, dim: int, classes: int, norm: str, bias: bool, act: str = "none", eps: float | None = None,
                 pre_logits: int | None = None):
        super().__init__()
        self.norm = make_norm(norm, dim, eps)
        self.pre_logits = nn.Linear(dim, pre_logits) if pre_logits else None
        self.fc = nn.Linear(pre_logits or dim, classes, bias=bias)
        self.act = make_act(act)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """What the final linear map reads (timm's ``forward_head(x, pre_logits=True)``)."""
        if self.norm is not None:
            x = self.norm(x)
        if self.pre_logits is not None:
            x = torch.tanh(self.pre_logits(x))
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.fc(self.features(x))
        return x if self.act is None else self.act(x)


class Merge(nn.Module):
    def __init__(self, mode: str, layout: str, flatten: tuple[bool, ...] = ()):
        super().__init__()
        self.mode = mode
        self.dim = 1 if layout == "image" else -1
        self.flatten = flatten  # sequence: which inputs are (B, C, H, W) maps, flattened to (B, H·W, C)

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        if self.mode == "sequence":
            return torch.cat([x.flatten(2).transpose(1, 2) if f else x for x, f in zip(xs, self.flatten)], dim=1)
        if self.mode in ("add", "mean"):
            out = xs[0]
            for x in xs[1:]:
                out = out + x
            return out / len(xs) if self.mode == "mean" else out
        return torch.cat(xs, dim=self.dim)


class PrefixNorm(nn.Module):
    """A norm of the ``count`` leading special tokens only; the rest pass unchanged."""

    def __init__(self, norm: nn.Module, count: int):
        super().__init__()
        self.norm, self.count = norm, count

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat((self.norm(x[:, :self.count]), x[:, self.count:]), dim=1)
