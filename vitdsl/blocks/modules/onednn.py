"""The blocks' matrix products on the CPU run on oneDNN (``torch.ops.mkldnn._linear_pointwise``), and in
inference take the activation after them or the residual add into the same call (oneDNN's post-ops).

Why: on the 2-core development CPU, in float32, oneDNN's product took 0.64–0.94 of the time of ``F.linear``
(MKL's GEMM there) on every ViT-S and ViT-B shape measured, at batch 1, 8 and 16, with or without a bias; so did
the input's gradient in backward (0.68–0.79). The weight's gradient stays on MKL, which was faster at it (23 vs
30 ms for ViT-S's fc1 at batch 16). In inference, a fused activation saves a pass over the hidden tensor, the
fused residual add one over the tokens.

Only where nothing can tell the difference but time: float32 on the CPU, eager or compiled (as custom ops the
compiler calls as they are) but not exporting, tracing or under a ``torch.func`` transform, no dispatch mode
watching but the selective checkpoint's (a FLOP counter or fake tensors would not know the op), oneDNN enabled,
no autocast, an exact ``nn.Linear`` (a quantized or adapted replacement runs as itself) and no hook that the call
would skip. The results are the same up to the order of the GEMM's sums (about 1e-6 relative).
``plain_kernels()`` (eager) and ``ONEDNN = False`` (everywhere) turn it off.
"""
from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar
from typing import Optional

import torch
import torch.utils.checkpoint as _checkpoint
from torch import nn
from torch.nn.modules import module as _module
from torch.utils._python_dispatch import _disable_current_modes, _get_current_dispatch_mode_stack

from . import heap

# False: every Linear runs as its module (bit for bit what the same model written by hand computes);
# ``plain_kernels()`` does the same within a block of code
ONEDNN = True
_PLAIN: ContextVar[bool] = ContextVar("vitdsl_plain_kernels", default=False)
# set for a recomputed block (``deciding``): whether its products run on oneDNN, decided once as it starts, so
# that backward's recomputation runs the very ops the forward ran, whatever changed between them
_DECIDED: ContextVar[bool | None] = ContextVar("vitdsl_onednn_decided", default=None)
# set in a recomputation that stops as the product with this weight saves its inputs (``unused``)
_UNUSED: ContextVar[torch.Tensor | None] = ContextVar("vitdsl_onednn_unused", default=None)

_pointwise = torch.ops.mkldnn._linear_pointwise
# the selective checkpoint's modes (recompute.py) run any op; any other mode may not know this one
_CHECKPOINT_MODES = (_checkpoint._CachingTorchDispatchMode, _checkpoint._CachedTorchDispatchMode)

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


def cpu_inference(module: nn.Module, x: torch.Tensor) -> bool:
    """Whether ``module``'s call on ``x`` is inference on the CPU, eager or compiled: eval mode, no gradients,
    not tracing."""
    return not (module.training or torch.is_grad_enabled() or x.device.type != "cpu" or torch.jit.is_tracing())


def eager_cpu_inference(module: nn.Module, x: torch.Tensor) -> bool:
    """Whether ``module``'s call on ``x`` is eager inference on the CPU: ``cpu_inference``, not compiling or
    exporting."""
    return cpu_inference(module, x) and not torch.compiler.is_compiling()


def hooked(*modules: nn.Module | None) -> bool:
    """Whether a forward hook would see the call: one on any of ``modules``, or a global one."""
    return bool(_module._global_forward_hooks or _module._global_forward_pre_hooks) or any(
        m is not None and (m._forward_hooks or m._forward_pre_hooks) for m in modules)


def _weights(lin: nn.Module) -> tuple[torch.Tensor, torch.Tensor | None] | None:
    """The weight and bias of an exact ``nn.Linear``, or of a module that says it is one (``as_linear``)."""
    if type(lin) is nn.Linear:
        return lin.weight, lin.bias
    as_linear = getattr(lin, "as_linear", None)
    return None if as_linear is None else as_linear()


def allowed() -> bool:
    """What may change between a forward and its recomputation: the switches, autocast, a transform, a global
    hook, a dispatch mode (the selective checkpoint's own take any op)."""
    return (ONEDNN and not _PLAIN.get() and torch.backends.mkldnn.enabled and not torch.is_autocast_enabled("cpu")
            and not torch._C._are_functorch_transforms_active() and not hooked()
            and all(isinstance(m, _CHECKPOINT_MODES) for m in _get_current_dispatch_mode_stack()))


def _onednn_weights(x: torch.Tensor, lin: nn.Module) -> tuple[torch.Tensor, torch.Tensor | None] | None:
    """``lin``'s weight and bias when its product on ``x`` runs on oneDNN, else None."""
    # the compiler's test first: it reads no further (dynamo cannot read a ContextVar)
    if torch.compiler.is_compiling() or torch.jit.is_tracing():
        return None
    decided = _DECIDED.get()
    if not (decided if decided is not None else allowed() and not hooked(lin)):
        return None
    return _float32_cpu_weights(x, lin) if type(x) is torch.Tensor else None


def _float32_cpu_weights(x: torch.Tensor, lin: nn.Module) -> tuple[torch.Tensor, torch.Tensor | None] | None:
    """``lin``'s weight and bias when ``x`` is float32 on the CPU and ``lin`` an exact Linear (or says it is one)
    with a plain float32 weight, else None."""
    if not (x.device.type == "cpu" and x.dtype == torch.float32):
        return None
    weights = _weights(lin)
    # a plain weight: not a DTensor or another subclass, which dispatches the product itself
    ok = weights is not None and type(weights[0]) in (torch.Tensor, nn.Parameter) and weights[0].dtype == torch.float32
    return weights if ok else None


def runs_on_onednn(x: torch.Tensor, lin: nn.Module) -> bool:
    """Whether ``lin``'s product on ``x`` runs on oneDNN (``linear``)."""
    return _onednn_weights(x, lin) is not None


@contextmanager
def deciding(on: bool):
    """Within it, products run on oneDNN if ``on`` (and the tensors allow), whatever else holds then: a
    recomputed block runs its forward and its recomputation in it with ``on`` from ``allowed()`` as it starts
    (recompute.py). A block with a hook inside does not recompute, so no hook can be skipped."""
    token = _DECIDED.set(on)
    try:
        yield
    finally:
        _DECIDED.reset(token)


@contextmanager
def unused(weight: torch.Tensor | None):
    """Within it, the product with ``weight`` (on oneDNN, with gradients) saves its inputs for backward but
    computes nothing: its output is NaN. For a recomputation that stops there (recompute.py): the selective
    checkpoint recomputes until every tensor the forward saved is saved again, and an autograd Function saves
    after its forward ran, so the block's last product would otherwise run once more, for nothing (ViT-S: 24
    products a step, 5/12 of the blocks' Linear FLOPs). A plain ``F.linear`` saves before it runs, and stops
    sooner. NaN and not garbage: if anything did read the output, the gradients would say so."""
    token = _UNUSED.set(weight)
    try:
        yield
    finally:
        _UNUSED.reset(token)


def _eager(x, weight, bias, attr, algorithm):
    return _pointwise(x, weight, bias, attr, [], algorithm)


def _eager_add(x, residual, weight, bias):
    return _pointwise.binary(x, residual, weight, bias, "add")


def _parameter_grads(needs: tuple[bool, ...], grad: torch.Tensor, x: torch.Tensor, bias: bool):
    """The weight's gradient (MKL's GEMM) and the bias's, each None where ``needs`` (the backward's
    ``needs_input_grad``: input, weight, bias) says it is not wanted; for ``_Linear`` and ``vitdsl::linear``."""
    flat = grad.reshape(-1, grad.shape[-1])
    gw = flat.t() @ x.reshape(-1, x.shape[-1]) if needs[1] else None
    gb = flat.sum(0) if bias and needs[2] else None
    return gw, gb


class _Linear(torch.autograd.Function):
    """``F.linear`` with oneDNN's kernel for the output and the input's gradient, MKL's for the weight's."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        ctx.save_for_backward(x, weight)
        return _eager(x, weight, bias, "none", "")

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        x, weight = ctx.saved_tensors
        gx = None
        if ctx.needs_input_grad[0]:
            # a double backward (create_graph) differentiates this: then ops with derivatives
            gx = grad @ weight if torch.is_grad_enabled() else _eager(grad, weight.t(), None, "none", "")
        return gx, *_parameter_grads(ctx.needs_input_grad, grad, x, bias=True)


class _Unused(_Linear):
    """``_Linear`` inside ``unused``: the same inputs saved, nothing computed."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        ctx.save_for_backward(x, weight)
        # outside the dispatch modes: the selective checkpoint's refuses ops the forward did not run
        with _disable_current_modes():
            return x.new_full((), float("nan")).expand(*x.shape[:-1], weight.shape[0])


# While compiling, the products are these custom ops: the compiler calls them as they are, as it calls its own
# GEMM. ``mkldnn._linear_pointwise`` itself cannot go into the graph: inductor's pattern passes take it for a
# frozen inference weight and fail on a trained one.
@torch.library.custom_op("vitdsl::linear", mutates_args=())
def _op(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor], attr: str,
        algorithm: str) -> torch.Tensor:
    return _eager(x, weight, bias, attr, algorithm)


@torch.library.custom_op("vitdsl::linear_add", mutates_args=())
def _op_add(x: torch.Tensor, residual: torch.Tensor, weight: torch.Tensor,
            bias: Optional[torch.Tensor]) -> torch.Tensor:
    return _eager_add(x, residual, weight, bias)


@torch.library.custom_op("vitdsl::linear_input_grad", mutates_args=())
def _op_input_grad(grad: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    return _eager(grad, weight.t(), None, "none", "")


@_op.register_fake
def _(x, weight, bias, attr, algorithm):
    return x.new_empty(*x.shape[:-1], weight.shape[0])


@_op_add.register_fake
def _(x, residual, weight, bias):
    return residual.new_empty(residual.shape)  # contiguous, as oneDNN's output is whatever the residual's strides


@_op_input_grad.register_fake
def _(grad, weight):
    return grad.new_empty(*grad.shape[:-1], weight.shape[1])


def _op_setup(ctx, inputs, output):
    x, weight, bias, attr, _ = inputs
    if attr != "none":  # ``linear`` fuses an activation only without gradients
        raise RuntimeError("vitdsl::linear differentiates only without a fused activation")
    ctx.save_for_backward(x, weight)
    ctx.bias = bias is not None


def _op_backward(ctx, grad):
    x, weight = ctx.saved_tensors
    gx = _op_input_grad(grad, weight) if ctx.needs_input_grad[0] else None
    return gx, *_parameter_grads(ctx.needs_input_grad, grad, x, ctx.bias), None, None


_op.register_autograd(_op_backward, setup_context=_op_setup)


def compiled_weights(x: torch.Tensor, lin: nn.Module) -> tuple[torch.Tensor, torch.Tensor | None] | None:
    """While compiling (not exporting: an exported program holds only PyTorch's ops), ``lin``'s weight and bias
    when its product on ``x`` runs on oneDNN, else None: what ``allowed`` asks that a compiler can read (not the
    ContextVars: ``plain_kernels`` does not reach into a compiled graph)."""
    if (torch.compiler.is_exporting() or not (ONEDNN and torch.backends.mkldnn.enabled) or hooked(lin)
            or torch.is_autocast_enabled("cpu")):
        return None
    weights = _float32_cpu_weights(x, lin)
    # Inference: an output over MAPPED_FRESH_ABOVE (heap.py) runs as aten's product, whose output buffer
    # inductor plans and reuses; oneDNN allocates its own, fresh pages on every call. PVT v2-b1 at batch 8 (stage
    # 1's 51 MiB hidden): 0.93-1.00 of timm's compiled time over seven runs (median 0.98) against 1.01-1.03, 41-63k
    # page faults a call against 75k; Swin-T 0.92-0.94 against 0.97. Training gained nothing measurable (PVT v2-b1
    # 0.91 against 0.89), so its products stay.
    if (weights is not None and not torch.is_grad_enabled()
            and x.numel() // x.shape[-1] * weights[0].shape[0] * x.element_size() > heap.MAPPED_FRESH_ABOVE):
        return None
    return weights


def linear(x: torch.Tensor, lin: nn.Module, act: nn.Module | None = None,
           residual: torch.Tensor | None = None) -> torch.Tensor:
    """``act(lin(x)) + residual`` (either left out when None): the product on oneDNN where ``runs_on_onednn``
    (while compiling, ``compiled_weights``) says so; without gradients the activation (unhooked) or the residual
    in the same call (not both: oneDNN fuses one); else as the modules."""
    compiling = torch.compiler.is_compiling()
    weights = compiled_weights(x, lin) if compiling else _onednn_weights(x, lin)
    product, product_add = (_op, _op_add) if compiling else (_eager, _eager_add)
    if weights is None:
        y = lin(x)
    elif torch.is_grad_enabled():
        if compiling:
            # as a matrix: then the tensor autograd keeps for the weight's gradient is the very node the product
            # reads, and inductor computes it once. Given (..., C), the product reads the node and the backward
            # its flattened view: inductor wrote the node twice, a second GELU or LayerNorm pass over the hidden.
            y = _op(x.reshape(-1, x.shape[-1]), *weights, "none", "").view(*x.shape[:-1], -1)
        else:
            y = (_Unused if weights[0] is _UNUSED.get() else _Linear).apply(x, *weights)
    else:
        post = ("none", "") if act is None else None if hooked(act) else _ACTS.get(
            (type(act), getattr(act, "approximate", None)))
        if post is not None and residual is None:
            return product(x, *weights, *post)
        if (act is None and type(residual) is torch.Tensor and residual.dtype == torch.float32
                and residual.shape == x.shape[:-1] + weights[0].shape[:1]):
            return product_add(x, residual, *weights)
        y = product(x, *weights, "none", "")
    if act is not None:
        y = act(y)
    return y if residual is None else y + residual
