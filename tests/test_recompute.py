"""In training, MLP and attention blocks keep for backward only what their matrix products give and recompute
the rest in backward (``vitdsl/blocks/modules/recompute.py``): the same outputs and gradients as one pass,
much less kept, and never where a hook, a compiler or inference would notice."""
import weakref

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from vitdsl.blocks import lookup
from vitdsl.blocks.modules.attention.core import Attention
from vitdsl.blocks.modules.mlp import MLP
from vitdsl.blocks.shape import Shape

D, N, B = 16, 50, 4
ND = B * N * D * 4  # bytes of one (B, N, D) float32 tensor

CASES = {
    "mlp": ("mlp", {"mult": 4}, Shape.tokens(N, D)),
    "mlp, dropout": ("mlp", {"mult": 4, "dropout": 0.3}, Shape.tokens(N, D)),
    "mlp, SwiGLU and a norm": ("mlp", {"mult": 4, "gate": "swiglu", "gate_norm": True}, Shape.tokens(N, D)),
    "mlp, post norm, layer scale": ("mlp", {"mult": 4, "norm": "post", "layer_scale": 0.1}, Shape.tokens(N, D)),
    "mlp, depthwise conv (PVT v2)": ("mlp", {"mult": 4, "dwconv": 3}, Shape.image(D, 5, 10)),
    "attention": ("global-attn", {"heads": 2, "dim_head": 8}, Shape.tokens(N, D)),
    "attention, dropout": ("global-attn", {"heads": 2, "dim_head": 8, "attn_dropout": 0.2, "dropout": 0.2},
                           Shape.tokens(N, D)),
    "attention, RoPE (EVA-02)": ("global-attn", {"heads": 2, "dim_head": 8, "rope": "axial"},
                                 Shape.tokens(N, D, grid=(5, 10))),
}


@pytest.fixture
def recompute_switch():
    """Sets the switch for both kinds of block, and puts it back."""
    before = MLP.recompute, Attention.recompute

    def switch(on: bool) -> None:
        MLP.recompute = Attention.recompute = on
    yield switch
    MLP.recompute, Attention.recompute = before


class Kept(TorchDispatchMode):
    """Bytes of the tensors that ops create under it (views of what they are given are not new) and that are
    still alive when asked: after a forward, what autograd and the recomputation keep for backward, plus the
    output."""

    def __init__(self):
        super().__init__()
        self.made: list[weakref.ref] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        given = {a.untyped_storage().data_ptr() for a in args if isinstance(a, torch.Tensor)}
        for t in (out if isinstance(out, (tuple, list)) else (out,)):
            if isinstance(t, torch.Tensor) and t.untyped_storage().data_ptr() not in given:  # not a view
                self.made.append(weakref.ref(t.untyped_storage()))
        return out

    def alive(self) -> int:
        # by address among the living only: a freed tensor's address is reused by later ones
        living = {s.data_ptr(): s.nbytes() for s in (ref() for ref in self.made) if s is not None}
        return sum(living.values())


def make(case: str):
    kind, fields, shape = CASES[case]
    torch.manual_seed(0)
    block = lookup(kind)(**fields).build(shape).train()
    # the class switch decides here, also for the gate and RoPE, which are off on their own modules by default
    block.__dict__.pop("recompute", None)
    return block, torch.randn(B, *shape.dims, requires_grad=True)


@pytest.mark.parametrize("case", ["mlp, SwiGLU and a norm", "attention, RoPE (EVA-02)"])
def test_a_gate_and_rope_train_in_one_pass_unless_asked(case):
    kind, fields, shape = CASES[case]
    block = lookup(kind)(**fields).build(shape).train()
    x = torch.randn(B, *shape.dims, requires_grad=True)
    assert not block.recomputes(x)
    assert make("mlp" if kind == "mlp" else "attention")[0].recomputes(x[..., :D] if kind == "mlp" else x)
    block.recompute = True
    assert block.recomputes(x)


def run(module, x, seed: int = 1):
    """Output and gradients (input's and every parameter's) of one training step, the act's calls, and the
    bytes kept after forward."""
    calls = []
    act = getattr(module, "act", None)
    if act is not None:  # counted by wrapping, not a hook: a hook inside the block turns recomputation off
        act.forward = lambda t, f=type(act).forward, m=act: calls.append(1) or f(m, t)
    x.grad = None
    module.zero_grad(set_to_none=True)
    torch.manual_seed(seed)
    with Kept() as kept:
        out = module(x)
    kept_bytes = kept.alive()
    out.square().sum().backward()
    if act is not None:
        del act.forward
    grads = [x.grad] + [p.grad for p in module.parameters()]
    return out, grads, len(calls), kept_bytes


@pytest.mark.parametrize("case", CASES)
def test_training_recomputes_with_the_gradients_of_one_pass(recompute_switch, case):
    module, x = make(case)
    recompute_switch(False)
    out, grads, calls, kept = run(module, x)
    recompute_switch(True)
    out2, grads2, calls2, kept2 = run(module, x)
    assert (out2 - out).abs().max() <= 1e-6
    for g, g2 in zip(grads, grads2, strict=True):
        assert (g2 - g).abs().max() <= 1e-5
    if case.startswith("mlp"):
        assert (calls, calls2) == (1, 2)  # the activation ran again in backward
    assert kept2 < kept


@pytest.mark.parametrize("case", ["mlp", "mlp, SwiGLU and a norm", "mlp, depthwise conv (PVT v2)"])
def test_a_double_backward_recomputes_once_more(recompute_switch, case):
    # a gradient penalty differentiates the gradients: backward runs through the block a second time, when the
    # selective checkpoint no longer holds what it kept (SDPA's CPU kernel has no double backward: no attention)
    module, x = make(case)
    grads = {}
    for on in (False, True):
        recompute_switch(on)
        module.zero_grad(set_to_none=True)
        (gx,) = torch.autograd.grad(module(x).square().sum(), x, create_graph=True)
        gx.square().sum().backward()
        grads[on] = [gx.detach(), *(p.grad for p in module.parameters())]
    for a, b in zip(grads[False], grads[True], strict=True):
        assert (a - b).abs().max() <= 1e-5 * max(1.0, a.abs().max().item())


# bytes kept after forward, one pass and recomputing. An MLP: one pass keeps the pre norm's output (ND) with
# its means and deviations, fc1's and the GELU's (4 ND each) and the block's output (ND); recomputing, only
# fc1's and the output (fc2's own, added to x, is not kept). Attention: one pass keeps the pre norm's output
# and statistics, q·k·v (3 ND), the attention's output (ND) with its log-sum-exp (B·heads·N) and the block's
# (ND); recomputing, no norm
STATS, LSE = 2 * B * N * 4, B * 2 * N * 4
KEPT = {"mlp": (10 * ND + STATS, 5 * ND), "attention": (6 * ND + STATS + LSE, 5 * ND + LSE)}


@pytest.mark.parametrize("case", KEPT)
def test_what_a_block_keeps(recompute_switch, case):
    module, x = make(case)
    kept = []
    for on in (False, True):
        recompute_switch(on)
        kept.append(run(module, x)[3])
    assert tuple(kept) == KEPT[case]


def test_batch_norms_count_their_statistics_once(recompute_switch):
    # CvT's convolutional projections have batch norms: kept, never run again in backward
    module = lookup("conv-attn")(heads=2, dim_head=8, proj="separable").build(Shape.image(D, 6, 6)).train()
    x = torch.randn(B, D, 6, 6, requires_grad=True)
    stats = {}
    for on in (False, True):
        recompute_switch(on)
        for m in module.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.reset_running_stats()
        module(x).sum().backward()
        stats[on] = [t.clone() for m in module.modules() if isinstance(m, torch.nn.BatchNorm2d)
                     for t in (m.running_mean, m.running_var, m.num_batches_tracked)]
    assert stats[True] and all(torch.equal(a, b) for a, b in zip(stats[False], stats[True], strict=True))


def test_no_recomputation_where_it_would_show(recompute_switch):
    recompute_switch(True)
    module, x = make("mlp")
    assert run(module, x)[2] == 2
    hook = module.fc1.register_forward_hook(lambda *_: None)  # it would see fc1 run again in backward
    assert run(module, x)[2] == 1
    hook.remove()
    hook = torch.nn.modules.module.register_module_forward_hook(lambda *_: None)  # global: watches all anyway
    try:
        assert run(module, x)[2] == 2
    finally:
        hook.remove()
    with torch.no_grad():
        assert module.recomputes(x) is False
    frozen = x.detach()
    for p in module.parameters():
        p.requires_grad_(False)
    assert module.recomputes(frozen) is False  # nothing to differentiate
    recompute_switch(False)
    for p in module.parameters():
        p.requires_grad_(True)
    assert run(module, x)[2] == 1


def test_an_attention_on_the_explicit_softmax_does_not_recompute(recompute_switch):
    # Swin's relative position bias needs a gradient: on CPU that runs the explicit softmax, whose logits
    # product the policy would keep, more than one pass keeps
    recompute_switch(True)
    module = lookup("local-attn")(heads=2, dim_head=8, window=5).build(Shape.image(D, 10, 10)).train()
    x = torch.randn(B, D, 10, 10, requires_grad=True)
    attention = next(m for m in module.modules() if isinstance(m, Attention))
    assert attention.recomputes(x.permute(0, 2, 3, 1)) is False


def test_compiled_training_leaves_recomputation_to_the_compiler(recompute_switch):
    recompute_switch(True)
    module, x = make("mlp")
    graphs = []

    def record(gm, example_inputs):
        graphs.append(gm)
        return gm.forward

    out = torch.compile(module, backend=record, fullgraph=True)(x)
    targets = [str(n.target) for g in graphs for n in g.graph.nodes]
    assert len(graphs) == 1 and not [t for t in targets if "checkpoint" in t]
    out.sum().backward()
    assert x.grad is not None
