"""Inference on CPU: the blocks' matrix products run on oneDNN, with the activation after them or the residual
add fused into the product (oneDNN post-ops, ``torch.ops.mkldnn._linear_pointwise``).

Why: on the 2-core development CPU, in float32 without gradients, oneDNN's linear took 0.80–0.94 of the time
of ``F.linear`` (PyTorch's default there, MKL's GEMM after a copy of the bias) on every ViT-S and ViT-B shape
measured, and fusing the GELU saves a pass over the 4·D-wide hidden tensor, the residual add one over the
tokens. ViT-S/16 at batch 8 went from 0.92 to 0.84 of timm's eval time with the MLP fused alone.

Only where nothing can tell the difference but time: eval mode, no gradients, float32 on the CPU, eager (not
compiling, exporting or tracing, and no dispatch mode such as a FLOP counter watching), oneDNN enabled, no
autocast, an exact ``nn.Linear`` (a quantized or adapted replacement runs as itself) and no hook that the fused
call would skip. The results are the same up to the order of the GEMM's sums (about 1e-6 relative).
"""
from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar

import torch
from torch import nn
from torch.nn.modules import module as _module
from torch.utils._python_dispatch import _get_current_dispatch_mode

# False: every Linear runs as its module (bit for bit what the same model written by hand computes);
# ``plain_kernels()`` does the same within a block of code
ONEDNN = True
_PLAIN: ContextVar[bool] = ContextVar("vitdsl_plain_kernels", default=False)

_pointwise = torch.ops.mkldnn._linear_pointwise

# (module type, GELU's approximation) → oneDNN's post-op and its algorithm
_ACTS = {(nn.GELU, "none"): ("gelu", "none"), (nn.GELU, "tanh"): ("gelu", "tanh"), (nn.ReLU, None): ("relu", ""),
         (nn.SiLU, None): ("swish", ""), (nn.Hardswish, None): ("hardswish", ""),
         (nn.Sigmoid, None): ("sigmoid", ""), (nn.Tanh, None): ("tanh", "")}


@contextmanager
def plain_kernels():
    """Within it, this thread's Linear layers run as their modules (``vitdsl.capture`` records in it, so that
    maps and outputs are what the modules compute)."""
    token = _PLAIN.set(True)
    try:
        yield
    finally:
        _PLAIN.reset(token)


def eager_cpu_inference(module: nn.Module, x: torch.Tensor) -> bool:
    """Whether ``module``'s call on ``x`` is eager inference on the CPU: eval mode, no gradients, not compiling,
    exporting or tracing."""
    return not (module.training or torch.is_grad_enabled() or x.device.type != "cpu"
                or torch.compiler.is_compiling() or torch.jit.is_tracing())


def _hooked(*modules: nn.Module | None) -> bool:
    return bool(_module._global_forward_hooks or _module._global_forward_pre_hooks) or any(
        m is not None and (m._forward_hooks or m._forward_pre_hooks) for m in modules)


def _weights(lin: nn.Module) -> tuple[torch.Tensor, torch.Tensor | None] | None:
    """The weight and bias of an exact ``nn.Linear``, or of a module that says it is one (``as_linear``)."""
    if type(lin) is nn.Linear:
        return lin.weight, lin.bias
    as_linear = getattr(lin, "as_linear", None)
    return None if as_linear is None else as_linear()


def fuses(owner: nn.Module, x: torch.Tensor, lin: nn.Module, *more: nn.Module | None) -> bool:
    """Whether ``lin`` (then the modules ``more``) may run as one oneDNN call on ``x`` inside ``owner``."""
    # the eager test first: a compiler reads no further (dynamo cannot read a ContextVar)
    return (eager_cpu_inference(owner, x) and ONEDNN and not _PLAIN.get() and type(x) is torch.Tensor
            and x.dtype == torch.float32 and _get_current_dispatch_mode() is None and torch.backends.mkldnn.enabled
            and not torch.is_autocast_enabled("cpu") and not _hooked(lin, *more))


def _act(act: nn.Module | None) -> tuple[str, str] | None:
    if act is None:
        return "none", ""
    return _ACTS.get((type(act), getattr(act, "approximate", None)))


def linear(owner: nn.Module, x: torch.Tensor, lin: nn.Module, act: nn.Module | None = None,
           residual: torch.Tensor | None = None) -> torch.Tensor:
    """``act(lin(x)) + residual`` (either left out when None) for the block ``owner``: on oneDNN in one call
    where ``fuses`` allows, else as the modules. Not both an activation and a residual (oneDNN fuses one)."""
    post = _act(act)
    weights = _weights(lin) if post is not None and fuses(owner, x, lin, act) else None
    if weights is not None and weights[0].dtype == torch.float32:
        if residual is None:
            return _pointwise(x, *weights, post[0], [], post[1])
        if (act is None and type(residual) is torch.Tensor and residual.dtype == torch.float32
                and residual.shape == x.shape[:-1] + weights[0].shape[:1]):
            return _pointwise.binary(x, residual, *weights, "add")
    y = lin(x)
    if act is not None:
        y = act(y)
    return y if residual is None else y + residual

