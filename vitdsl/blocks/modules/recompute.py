"""Training with less memory: a residual block keeps for backward only what its matrix products give, and
recomputes the rest (norms, activations, gates, RoPE, reshapes) in backward from that.

Autograd keeps, for an MLP block, the pre norm's output, fc1's output and the activation's (and one hidden
tensor more per op of a gate or a norm between); for an attention block the pre norm's output and, with RoPE,
the rotated queries and keys beside the plain ones. The products are what is expensive to compute again;
everything else is elementwise or a norm, and cheap. So the block runs under selective activation
checkpointing (``torch.utils.checkpoint``) with a policy: keep the outputs of matrix products, convolutions,
the fused attention kernel and batch norms (which must not count their running statistics twice); recompute
everything else. The one product not kept is the block's last (its output is the block's, which no backward
reads), found by its weight; nor is it run again: the recomputation stops as it saves its input. The
gradients are those of one pass: the same ops on the same values, dropout with the same random state.

Each recomputed op runs twice, and through the checkpoint's dispatch modes (Python) in between: cheap for a
norm and one activation, not for a gate's ops over the hidden or RoPE's on queries and keys, whose blocks
train in one pass unless asked (EVA-02-T's step: 0.87–0.90 of timm's time in one pass, 0.90–0.99 recomputing).

Measured on the 2-core development CPU, training step at batch 16, peak memory against one pass: ViT-S/16
0.77 (``docs/architecture.md``, "Training: recompute the cheap ops", has the rest).
"""
from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar
from typing import Callable

import torch
import torch.utils.checkpoint as _checkpoint
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode, _get_current_dispatch_mode, _pop_mode_temporarily
from torch.utils._pytree import tree_leaves
from torch.utils.checkpoint import (
    CheckpointPolicy,
    _CachedTorchDispatchMode,
    checkpoint,
    create_selective_checkpoint_contexts,
)

from . import onednn

_aten = torch.ops.aten
# the products: PyTorch's, and oneDNN's (onednn.py)
_PRODUCTS = {_aten.mm.default, _aten.addmm.default, torch.ops.mkldnn._linear_pointwise.default}
_KEPT = _PRODUCTS | {getattr(_aten, name).default for name in (
    "convolution", "native_batch_norm", "_native_batch_norm_legit",
    "_scaled_dot_product_flash_attention_for_cpu", "_scaled_dot_product_flash_attention",
    "_scaled_dot_product_efficient_attention", "_scaled_dot_product_cudnn_attention")}


def _storage(t: torch.Tensor) -> int:
    """The storage's identity (not its address: on the meta device, where the summary traces, all are 0)."""
    return t.untyped_storage()._cdata


def _policy(last: torch.Tensor | None):
    ptr = None if last is None else _storage(last)

    def policy(ctx, op, *args, **kwargs) -> CheckpointPolicy:
        if op not in _KEPT or (ptr is not None and op in _PRODUCTS
                               and any(isinstance(a, torch.Tensor) and _storage(a) == ptr for a in args)):
            return CheckpointPolicy.PREFER_RECOMPUTE
        return CheckpointPolicy.MUST_SAVE
    return policy


def hooked(module: nn.Module) -> bool:
    """Whether a forward hook on a module inside ``module`` would see the recomputation (the block's own hooks
    run once, around it). Global hooks (``torch.utils.flop_counter``'s, say) are not asked: they watch every
    module anyway, and they would see the ops backward runs."""
    return any(m._forward_hooks or m._forward_pre_hooks for m in module.modules() if m is not module)


def may_recompute(module: nn.Module, x: torch.Tensor) -> bool:
    """Whether a block's call on ``x`` can recompute: autograd records it (gradients on, and something to
    differentiate), in eager mode (a compiler chooses what to recompute itself) outside ``torch.func``'s
    transforms, with no hook inside."""
    return (torch.is_grad_enabled()
            and not (torch.compiler.is_compiling() or torch.compiler.is_exporting() or torch.jit.is_tracing()
                     or torch._C._are_functorch_transforms_active())  # torch.func: tensors without storage
            and (x.requires_grad or any(p.requires_grad for p in module.parameters())) and not hooked(module))


_WATCH: ContextVar[Callable[[list[torch.Tensor]], None] | None] = ContextVar("vitdsl_recompute_watch", default=None)


class _Collect(TorchDispatchMode):
    """Outside the recomputation's own mode: the outputs of the ops its policy keeps."""

    def __init__(self, policy):
        super().__init__()
        self.policy, self.kept = policy, []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if self.policy(None, func, *args, **(kwargs or {})) == CheckpointPolicy.MUST_SAVE:
            self.kept.extend(t for t in tree_leaves(out) if isinstance(t, torch.Tensor))
        return out


@contextmanager
def watching(callback: Callable[[list[torch.Tensor]], None]):
    """Within it, each recomputing call passes ``callback`` what it keeps for backward: its input and the
    outputs the policy keeps. What autograd's saved-tensor hooks cannot see (the summary counts with them)."""
    token = _WATCH.set(callback)
    try:
        yield
    finally:
        _WATCH.reset(token)


def recomputed(fn, x: torch.Tensor, last: torch.Tensor | None) -> torch.Tensor:
    """``fn(x)``, keeping for backward only what the policy above keeps; ``last``: the weight of ``fn``'s last
    matrix product, whose output is not kept."""
    policy = _policy(last)

    def context():
        return create_selective_checkpoint_contexts(policy)

    watch = _WATCH.get()
    if watch is None:
        return checkpoint(_replayable(fn, onednn.allowed(), last), x, use_reentrant=False, context_fn=context)
    with _Collect(policy) as collect:
        out = checkpoint(_replayable(fn, onednn.allowed(), last), x, use_reentrant=False, context_fn=context)
    watch([x, *collect.kept])
    return out


def _replayable(fn, on: bool, last: torch.Tensor | None):
    """``fn`` as the checkpoint runs it: its products on oneDNN or not as ``on`` says, in the forward and in
    each recomputation alike (a dispatch mode around the forward alone, a FLOP counter, must not change which
    ops backward recomputes). The recomputation stops (the checkpoint's early stop) as the last product saves
    its input, so that product is not computed again (``onednn.unused``). A second backward through the block
    (``create_graph``: a gradient penalty, a double backward) recomputes it once more, and the selective
    checkpoint gives what it kept only once: that time every op runs again, the products too."""
    runs = [0]

    def run(x: torch.Tensor) -> torch.Tensor:
        runs[0] += 1
        # the early stop may be turned off (``set_checkpoint_early_stop``): then all of fn runs, on real values
        stops = runs[0] > 1 and _checkpoint._enable_checkpoint_early_stop is not False
        with onednn.deciding(on), onednn.unused(last if stops else None):
            if runs[0] > 2 and isinstance(_get_current_dispatch_mode(), _CachedTorchDispatchMode):
                with _pop_mode_temporarily():
                    return fn(x)
            return fn(x)
    return run
