from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .common import BATCH_EPS, DropPath, make_act, norm_eps
from .depthwise import depthwise


def same_pads(x: torch.Tensor, kernel: int, stride: int) -> list[int]:
    """TensorFlow's SAME padding of a (B, C, H, W) map, (left, right, top, bottom): ceil(size / stride) positions
    out, the odd pixel of padding at the bottom and right."""
    pads = []
    for size in (x.shape[-1], x.shape[-2]):  # F.pad lists the last dimension first
        total = max((-(-size // stride) - 1) * stride + kernel - size, 0)
        pads += [total // 2, total - total // 2]
    return pads


def pad_same(x: torch.Tensor, kernel: int, stride: int, value: float = 0.0) -> torch.Tensor:
    """``x`` padded with ``value`` as ``same_pads`` says."""
    pads = same_pads(x, kernel, stride)
    return F.pad(x, pads, value=value) if any(pads) else x


class ConvNormAct(nn.Module):
    """Conv → norm → activation → max-pool; with ``frame`` = (kernel, stride, padding) along the frames the
    convolution is 3-D on (B, C, T, H, W) and the max-pool (1, k, k) leaves the frames alone."""

    channelwise = False  # a depthwise 2-D convolution, run through depthwise.py (set in __init__)

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, padding: int | str, bias: bool, norm: str,
                 act: str, groups: int = 1, pool: tuple[int, int, int | str] | None = None,
                 frame: tuple[int, int, int] | None = None, eps: float | None = None):
        super().__init__()
        self.same = (kernel, stride) if padding == "same" else None  # padded in forward, for any map size
        if frame is None:
            self.conv = nn.Conv2d(cin, cout, kernel, stride, 0 if self.same else padding, groups=groups, bias=bias)
        else:
            (fk, fs, fp), k = frame, kernel
            self.conv = nn.Conv3d(cin, cout, (fk, k, k), (fs, stride, stride), (fp, padding, padding), groups=groups,
                                  bias=bias)
        self.channelwise = frame is None and groups == cin == cout > 1
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
        if self.channelwise:  # compiled training hands the convolution channels-last tensors (depthwise.py)
            pads = None if self.same is None else same_pads(x, *self.same)
            x = depthwise(x.permute(0, 2, 3, 1), self.conv, pads).permute(0, 3, 1, 2)
        else:
            x = self.conv(x if self.same is None else pad_same(x, *self.same))
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
        return super().forward(pad_same(x, self.kernel_size, self.stride, float("-inf")))


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
    def __init__(self, dim: int, squeeze: int, bias: bool = False):
        super().__init__()
        self.reduce = nn.Linear(dim, squeeze, bias=bias)
        self.act = nn.SiLU()
        self.expand = nn.Linear(squeeze, dim, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g = self.expand(self.act(self.reduce(x.mean(dim=(2, 3)))))
        return x * g.sigmoid()[:, :, None, None]


class PoolConv(nn.Module):
    """MaxViT's shortcut: a 2×2 average pool (SAME-padded) where the block downsamples, then a 1×1
    convolution where it changes the width."""

    def __init__(self, cin: int, cout: int, stride: int, bias: bool):
        super().__init__()
        self.stride = stride
        self.conv = nn.Conv2d(cin, cout, 1, bias=bias) if cin != cout else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride > 1:
            x = F.avg_pool2d(pad_same(x, self.stride, self.stride), self.stride)
        return x if self.conv is None else self.conv(x)


class MBConv(nn.Module):
    def __init__(self, cin: int, cout: int, hidden: int, squeeze: int, stride: int, act: str, bias: bool,
                 drop_path: float, norm: str = "post", eps: float | None = None, project_bias: bool | None = None,
                 se_bias: bool = False, shortcut: str = "same-shape", padding: str = "symmetric"):
        super().__init__()
        eps = BATCH_EPS if eps is None else eps
        self.pre_norm = nn.BatchNorm2d(cin, eps=eps) if norm == "pre" else None
        self.expand = ConvNormAct(cin, hidden, 1, 1, 0, bias, "batch", act, eps=eps)
        self.depthwise = ConvNormAct(hidden, hidden, 3, stride, "same" if padding == "same" else 1, bias, "batch",
                                     act, groups=hidden, eps=eps)
        self.se = SqueezeExcite(hidden, squeeze, se_bias) if squeeze > 0 else None
        self.project = ConvNormAct(hidden, cout, 1, 1, 0, bias if project_bias is None else project_bias,
                                   "none" if norm == "pre" else "batch", "none", eps=eps)
        self.shortcut = PoolConv(cin, cout, stride, project_bias) if shortcut == "pool-conv" else None
        self.residual = self.shortcut is not None or cin == cout and stride == 1
        self.drop_path = DropPath(drop_path) if drop_path > 0 and self.residual else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.depthwise(self.expand(x if self.pre_norm is None else self.pre_norm(x)))
        if self.se is not None:
            y = self.se(y)
        y = self.project(y)
        if not self.residual:
            return y
        if self.drop_path is not None:
            y = self.drop_path(y)
        return y + (x if self.shortcut is None else self.shortcut(x))
