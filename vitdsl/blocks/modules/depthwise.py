"""The depthwise convolution of a channels-last map, (B, H, W, C) → (B, H', W', C): in compiled training, one custom
op with its backward, whose tensors stay channels-last.

Inductor hands the convolution's backward the gradient it computed channels-first (B, C, H, W), and the saved input
in an order of its own: oneDNN's depthwise kernels then take their slow path. Measured on the 2-core CPU at
batch 16, (16, 512, 56, 56): forward and backward took 336 ms channels-first against 112 ms channels-last. As an
op the compiler calls as it is, the kernel gets the (B, H, W, C) tensors the blocks hold: PVT v2-b1's compiled
training step went from 1.01–1.05 of timm's compiled time to 0.86–0.90, MaxViT-T's (its MBConvs, SAME padding
given as the op's own) from 0.96–1.07 to 0.92–0.93 (alternating in one process). Without gradients the compiler
keeps the channels-last forward by itself, and the op only stood in its way (compiled eval 1.06 against 1.01), so
inference runs the module."""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from .onednn import hooked


def _conv_input(x: torch.Tensor, pads: list[int]) -> tuple[torch.Tensor, int]:
    """The (B, C, H, W) channels-last view of ``x``, padded as ``pads`` (left, right, top, bottom) say, and the
    padding left to the convolution: all of it where it is the same on every side."""
    x = x.permute(0, 3, 1, 2)
    if len(set(pads)) == 1:
        return x, pads[0]
    return F.pad(x, pads), 0


@torch.library.custom_op("vitdsl::depthwise", mutates_args=())
def _op(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor], stride: int,
        pads: list[int]) -> torch.Tensor:
    xc, padding = _conv_input(x, pads)
    y = F.conv2d(xc, weight, bias, stride=stride, padding=padding, groups=x.shape[-1])
    return y.permute(0, 2, 3, 1).contiguous()  # already so: the kernel keeps the input's channels-last


def _out_size(size: int, before: int, after: int, kernel: int, stride: int) -> int:
    return (size + before + after - kernel) // stride + 1


@_op.register_fake
def _(x, weight, bias, stride, pads):
    k = weight.shape[-1]
    return x.new_empty(x.shape[0], _out_size(x.shape[1], pads[2], pads[3], k, stride),
                       _out_size(x.shape[2], pads[0], pads[1], k, stride), x.shape[3])


@torch.library.custom_op("vitdsl::depthwise_backward", mutates_args=())
def _op_backward(grad: torch.Tensor, x: torch.Tensor, weight: torch.Tensor, stride: int, pads: list[int],
                 input_grad: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """The input's gradient (an empty tensor unless ``input_grad``) and the weight's."""
    xc, padding = _conv_input(x, pads)
    gx, gw, _ = torch.ops.aten.convolution_backward(
        grad.permute(0, 3, 1, 2), xc, weight, None, [stride, stride], [padding, padding], [1, 1], False, [0, 0],
        x.shape[-1], [input_grad, True, False])
    if not input_grad:
        return x.new_empty(0), gw.contiguous()
    if not padding and any(pads):  # the gradient of the padded input: the map's part of it
        gx = gx[:, :, pads[2]:pads[2] + x.shape[1], pads[0]:pads[0] + x.shape[2]]
    return gx.permute(0, 2, 3, 1).contiguous(), gw.contiguous()


@_op_backward.register_fake
def _(grad, x, weight, stride, pads, input_grad):
    return x.new_empty(x.shape if input_grad else (0,)), weight.new_empty(weight.shape)


def _setup(ctx, inputs, output):
    x, weight, bias, stride, pads = inputs
    ctx.save_for_backward(x, weight)
    ctx.stride, ctx.pads, ctx.bias = stride, pads, bias is not None


def _backward(ctx, grad):
    x, weight = ctx.saved_tensors
    gx, gw = _op_backward(grad, x, weight, ctx.stride, ctx.pads, ctx.needs_input_grad[0])
    gb = grad.sum((0, 1, 2)) if ctx.bias and ctx.needs_input_grad[2] else None
    return (gx if ctx.needs_input_grad[0] else None), gw, gb, None, None


_op.register_autograd(_backward, setup_context=_setup)


def fits(x: torch.Tensor, conv: nn.Conv2d) -> bool:
    """Whether ``vitdsl::depthwise`` can run ``conv`` on the map ``x``: an unhooked depthwise convolution with a
    square kernel, one stride for both axes, no dilation and zero padding, in float32 on the CPU."""
    w = conv.weight
    return (type(conv) is nn.Conv2d and x.device.type == "cpu" and x.dtype == w.dtype == torch.float32
            and not hooked(conv) and conv.groups == conv.in_channels == conv.out_channels == x.shape[-1]
            and conv.stride[0] == conv.stride[1] and conv.dilation == (1, 1) and conv.padding_mode == "zeros"
            and isinstance(conv.padding, tuple) and conv.padding[0] == conv.padding[1]
            and w.shape[-1] == w.shape[-2])


def _as_op(x: torch.Tensor, conv: nn.Conv2d) -> bool:
    """Whether ``conv`` on ``x`` runs as ``vitdsl::depthwise``: where it ``fits``, in compiled (not exported)
    training without autocast."""
    return (fits(x, conv) and torch.compiler.is_compiling() and not torch.compiler.is_exporting()
            and torch.is_grad_enabled() and not torch.is_autocast_enabled("cpu"))


def depthwise(x: torch.Tensor, conv: nn.Conv2d, pads: list[int] | None = None) -> torch.Tensor:
    """``conv`` (a depthwise Conv2d) on the channels-last map ``x`` (B, H, W, C): (B, H', W', C). ``pads`` (left,
    right, top, bottom), zeros, stand for the convolution's own padding where given (TensorFlow's SAME)."""
    if _as_op(x, conv) and (pads is None or conv.padding == (0, 0)):
        pads = [conv.padding[0]] * 4 if pads is None else pads
        return _op(x.contiguous(), conv.weight, conv.bias, conv.stride[0], pads)
    x = x.permute(0, 3, 1, 2)
    return conv(F.pad(x, pads) if pads and any(pads) else x).permute(0, 2, 3, 1)
