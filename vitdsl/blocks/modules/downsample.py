from __future__ import annotations

import torch
from torch import nn


class Downsample(nn.Module):
    def __init__(self, cin: int, cout: int, kernel: int, stride: int, padding: int, depthwise: bool,
                 pointwise: bool, bias: bool, prefix: int = 0, grid: tuple[int, int] | None = None):
        super().__init__()
        self.count, self.grid = prefix, grid  # grid None: the input is a feature map
        self.depthwise = nn.Conv2d(cin, cout, kernel, stride, padding, groups=cin if depthwise else 1, bias=bias)
        self.pointwise = nn.Conv2d(cout, cout, 1, bias=bias) if pointwise else None
        self.prefix = nn.Linear(cin, cout, bias=bias) if prefix else None

    def conv(self, x: torch.Tensor) -> torch.Tensor:
        x = self.depthwise(x)
        return self.pointwise(x) if self.pointwise is not None else x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.grid is None:
            return self.conv(x)
        b, _, c = x.shape
        special, x = x[:, :self.count], x[:, self.count:]
        x = self.conv(x.transpose(1, 2).reshape(b, c, *self.grid)).flatten(2).transpose(1, 2)
        if self.prefix is None:
            return x
        return torch.cat((self.prefix(special), x), dim=1)
