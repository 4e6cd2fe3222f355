from __future__ import annotations

import torch
from torch import nn

from .common import Mixer, make_act
from .depthwise import depthwise


class DWConv(Mixer):
    """Depthwise convolutions over a token grid (B, N, C) or a map (B, C, H, W); see the ``dwconv`` spec."""

    def __init__(self, dim: int, kernel: int, convs: int, mid_norm: str, act: str, bias: bool,
                 grid: tuple[int, int] | None, mid_order: str = "act-norm", skip: int = 0, **mixer):
        super().__init__()
        self.init_mixer(dim, **mixer)
        self.grid = grid
        self.skip = skip  # leading special tokens that pass unchanged
        conv = lambda: nn.Conv2d(dim, dim, kernel, padding=kernel // 2, groups=dim, bias=bias)  # noqa: E731
        self.conv1 = conv()
        two = convs == 2  # LPI: conv, norm, activation, conv; Identity keeps the names of the two-conv form
        self.mid_norm = nn.BatchNorm2d(dim) if two and mid_norm == "batch" else nn.Identity()
        self.act = make_act(act) if two and act != "none" else nn.Identity()
        self.conv2 = conv() if two else nn.Identity()
        self.act_first = mid_order == "act-norm"

    def mix(self, x: torch.Tensor) -> torch.Tensor:
        # channels-last throughout, the tokens' own order: the tokens are the map without a copy, and a compiled
        # training step runs the convolutions as one op each (depthwise.py)
        if self.grid is not None:  # tokens (B, N, C) -> map (B, H, W, C)
            x = x.reshape(x.shape[0], *self.grid, x.shape[-1])
        x = depthwise(x, self.conv1)
        if isinstance(self.conv2, nn.Conv2d):
            x = x.permute(0, 3, 1, 2)  # the batch norm's (B, C, H, W)
            x = self.mid_norm(self.act(x)) if self.act_first else self.act(self.mid_norm(x))
            x = depthwise(x.permute(0, 2, 3, 1), self.conv2)
        return x.flatten(1, 2) if self.grid is not None else x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.grid is None:
            return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        if self.skip:
            return torch.cat((x[:, :self.skip], super().forward(x[:, self.skip:])), dim=1)
        return super().forward(x)
