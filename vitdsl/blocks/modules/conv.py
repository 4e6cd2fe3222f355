from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .common import DropPath, make_act, norm_eps


class ConvNormAct(nn.Module):
    """Conv → norm → activation → max-pool; with ``frame`` = (kernel, stride, padding) along the frames the
    convolution is 3-D on (B, C, T, H, W) and the max-pool (1, k, k) leaves the frames alone."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, padding: int, bias: bool, norm: str,
                 act: str, groups: int = 1, pool: tuple[int, int, int | str] | None = None,
                 frame: tuple[int, int, int] | None = None, eps: float | None = None):
        super().__init__()
        if frame is None:
            self.conv = nn.Conv2d(cin, cout, kernel, stride, padding, groups=groups, bias=bias)
        else:
            (fk, fs, fp), k = frame, kernel
            self.conv = nn.Conv3d(cin, cout, (fk, k, k), (fs, stride, stride), (fp, padding, padding), groups=groups,
                                  bias=bias)
        batch = nn.BatchNorm2d if frame is None else nn.BatchNorm3d
        eps = norm_eps(norm, eps) if norm != "none" else None
        self.norm = {"none": None, "batch": batch(cout, eps=eps) if norm == "batch" else None,
                     "layer": ChannelLayerNorm(cout, eps=eps) if norm == "layer" else None}[norm]
        self.act = make_act(act)
        if pool is not None and frame is not None:
            self.pool = nn.MaxPool3d((1, pool[0], pool[0]), (1, pool[1], pool[1]), (0, pool[2], pool[2]))
        elif pool is not None and pool[2] == "same":
            self.pool = SamePool(*pool[:2])
        else:
            self.pool = nn.MaxPool2d(*pool) if pool is not None else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        if self.norm is not None:
            x = self.norm(x)
        if self.act is not None:
            x = self.act(x)
        if self.pool is not None:
            x = self.pool(x)
        return x


class SamePool(nn.MaxPool2d):
    """Max-pool with TensorFlow's SAME padding: ⌈n / stride⌉ outputs per side, the padding (-inf) split with
    the odd row or column after."""

    def __init__(self, kernel: int, stride: int):
        super().__init__(kernel, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k, s = self.kernel_size, self.stride
        pad = []
        for n in (x.shape[-1], x.shape[-2]):
            total = max((-(-n // s) - 1) * s + k - n, 0)
            pad += [total // 2, total - total // 2]
        return super().forward(F.pad(x, pad, value=float("-inf")))


class ChannelLayerNorm(nn.LayerNorm):
    """LayerNorm over the channels of (B, C, H, W) or (B, C, T, H, W)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.movedim(1, -1)).movedim(-1, 1)


class ConvStack(nn.Sequential):
    """Conv-norm-act layers; ``frame``: 3-D on volumes; ``fold_frames``: a volume's frames become images,
    folded into the batch (B, C, T, H, W) → (B·T, C, H, W), before 2-D layers; ``resize``: images of another
    side are resized to it (bicubic) first."""

    def __init__(self, cin: int, layers, bias: bool, norm: str, act: str, last_act: bool,
                 pool: tuple[int, int, int] | None = None, init: str = "default",
                 frame: tuple[int, int, int] | None = None, fold_frames: bool = False, last_norm: bool = False,
                 resize: int | None = None, eps: float | None = None):
        mods = []
        for i, (cout, k, s, p) in enumerate(layers):
            last = i == len(layers) - 1
            keep = last_act or not last
            mods.append(ConvNormAct(cin, cout, k, s, p, bias, norm if keep or last_norm else "none",
                                    act if keep else "none",
                                    pool=pool, frame=frame, eps=eps))
            if init == "kaiming":
                nn.init.kaiming_normal_(mods[-1].conv.weight)
            cin = cout
        super().__init__(*mods)
        self.fold_frames, self.resize = fold_frames, resize

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.resize is not None and x.shape[-2:] != (self.resize, self.resize):
            x = F.interpolate(x, size=(self.resize, self.resize), mode="bicubic", align_corners=False)
        if self.fold_frames:
            b, c, t, h, w = x.shape
            x = x.transpose(1, 2).reshape(b * t, c, h, w)
        return super().forward(x)


class SqueezeExcite(nn.Module):
    def __init__(self, dim: int, squeeze: int):
        super().__init__()
        self.reduce = nn.Linear(dim, squeeze, bias=False)
        self.act = nn.SiLU()
        self.expand = nn.Linear(squeeze, dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g = self.expand(self.act(self.reduce(x.mean(dim=(2, 3)))))
        return x * g.sigmoid()[:, :, None, None]


class MBConv(nn.Module):
    def __init__(self, cin: int, cout: int, hidden: int, squeeze: int, stride: int, act: str, bias: bool,
                 drop_path: float):
        super().__init__()
        self.expand = ConvNormAct(cin, hidden, 1, 1, 0, bias, "batch", act)
        self.depthwise = ConvNormAct(hidden, hidden, 3, stride, 1, bias, "batch", act, groups=hidden)
        self.se = SqueezeExcite(hidden, squeeze) if squeeze > 0 else None
        self.project = ConvNormAct(hidden, cout, 1, 1, 0, bias, "batch", "none")
        self.residual = cin == cout and stride == 1
        self.drop_path = DropPath(drop_path) if drop_path > 0 and self.residual else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.depthwise(self.expand(x))
        if self.se is not None:
            y = self.se(y)
        y = self.project(y)
        if not self.residual:
            return y
        if self.drop_path is not None:
            y = self.drop_path(y)
        return y + x
