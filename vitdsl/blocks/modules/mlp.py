from __future__ import annotations

import torch
from torch import nn

from .common import BatchNormLast, Mixer, make_act, norm_eps


class MLP(Mixer):
    """Linear → act → dropout → Linear → dropout over the last dimension (channels of a map)."""

    def __init__(self, dim: int, hidden: int, act: str, bias: bool, dropout: float, channels_first: bool = False,
                 prefix: int | None = None, out_dropout: bool = True, proj_norm: str = "none",
                 dwconv: int | None = None, dwconv_relu: bool = False, gate: str = "none", gate_norm: bool = False,
                 dim_out: int | None = None, **mixer):
        super().__init__()
        self.init_mixer(dim, **mixer)
        # not Mixer.channels_first: the map is moved channels-last before the mixer, so its layer scale
        # broadcasts over the last dimension as for tokens
        self.maps = channels_first
        self.prefix = prefix
        self.gated = gate != "none"
        self.fc1 = nn.Linear(dim, 2 * hidden if self.gated else hidden, bias=bias)
        self.relu = nn.ReLU() if dwconv_relu else None
        self.dwconv = nn.Conv2d(hidden, hidden, dwconv, padding=dwconv // 2, groups=hidden) if dwconv else None
        self.act = make_act("silu" if self.gated else act)
        self.gate_norm = nn.LayerNorm(hidden, eps=norm_eps("layer", mixer.get("norm_eps"))) if gate_norm else None
        dim_out = dim_out or dim
        self.fc2 = nn.Linear(hidden, dim_out, bias=bias)
        # a wider output: the residual is a projection of the normed input (MViTv2)
        self.shortcut = nn.Linear(dim, dim_out) if dim_out != dim and self.residual else None
        if dim_out != dim and self.gamma is not None:
            self.gamma = nn.Parameter(torch.full((dim_out,), float(mixer["layer_scale"])))
        self.drop = nn.Dropout(dropout) if dropout > 0 else None
        self.out_dropout = out_dropout
        self.fc1_norm = self.fc2_norm = None
        if proj_norm == "batch":
            self.fc1_norm, self.fc2_norm = BatchNormLast(hidden), BatchNormLast(dim_out)
            nn.init.zeros_(self.fc2_norm.weight)

    def mix(self, x: torch.Tensor) -> torch.Tensor:
        x = self.fc1(x)
        if self.fc1_norm is not None:
            x = self.fc1_norm(x)
        if self.dwconv is not None:  # x: a channels-last map (B, H, W, hidden)
            x = x.permute(0, 3, 1, 2)
            x = self.dwconv(x if self.relu is None else self.relu(x)).permute(0, 2, 3, 1)
        if self.gated:
            gate, x = x.chunk(2, dim=-1)
            x = self.act(gate) * x
        else:
            x = self.act(x)
        if self.drop is not None:
            x = self.drop(x)
        if self.gate_norm is not None:
            x = self.gate_norm(x)
        x = self.fc2(x)
        if self.fc2_norm is not None:
            x = self.fc2_norm(x)
        if self.drop is not None and self.out_dropout:
            x = self.drop(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.maps:
            return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        if self.shortcut is not None:
            xn = self.norm(x) if self.norm is not None else x
            return self.shortcut(xn) + self.branch(self.mix(xn))
        if self.prefix is not None:
            return torch.cat((super().forward(x[:, :self.prefix]), x[:, self.prefix:]), dim=1)
        return super().forward(x)
