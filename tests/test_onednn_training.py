"""In CPU training the blocks' Linear layers run on oneDNN too (``vitdsl/blocks/modules/onednn.py``): the output
and the input's gradient on oneDNN, the weight's on MKL, with the gradients the modules give, beside the
recomputation (recompute.py), through a double backward, and where a transform or a FLOP counter watches."""
import collections

import pytest
import torch
from test_onednn import calls, make, onednn_counted, plain
from torch.utils.flop_counter import FlopCounterMode

from vitdsl.blocks.modules import onednn
from vitdsl.blocks.modules.attention.core import Attention
from vitdsl.blocks.modules.mlp import MLP

CASES = {"mlp": {"none": 2}, "mlp, SwiGLU and a norm": {"none": 2}, "mlp, depthwise conv (PVT v2)": {"none": 2},
         "attention": {"none": 2}, "attention, RoPE (EVA-02)": {"none": 2}, "window attention (Swin)": {"none": 2}}


def step(block, x, kernels: bool = True):
    """The output and every gradient (the input's, each parameter's) of one forward and backward, and the
    oneDNN calls of the forward."""
    x = x.detach().clone().requires_grad_()
    block.zero_grad(set_to_none=True)
    if kernels:
        out, counts = calls(block, x)
    else:
        out, counts = plain(block, x), None
    (out * torch.linspace(-1, 1, out.shape[-1])).sum().backward()
    return [out.detach(), x.grad, *(p.grad for p in block.parameters())], counts


@pytest.fixture(params=[True, False], ids=["recomputing", "one pass"])
def recomputing(request):
    before = MLP.recompute, Attention.recompute
    MLP.recompute = Attention.recompute = request.param
    yield request.param
    MLP.recompute, Attention.recompute = before


@pytest.mark.parametrize("case", CASES)
def test_training_products_run_on_onednn_with_the_modules_gradients(case, recomputing):
    block, x = make(case)
    block.train()
    assert block.recomputes(x.clone().requires_grad_()) == (recomputing and case != "window attention (Swin)")
    got, counts = step(block, x)
    want, _ = step(block, x, kernels=False)
    assert counts == CASES[case]  # no activation or residual fused: backward reads the product's own output
    for g, w in zip(got, want, strict=True):
        assert g.shape == w.shape and (g - w).abs().max() <= 1e-5 * max(1.0, w.abs().max().item())


def test_a_flop_counter_around_the_forward(recomputing):
    # the recomputation in backward runs the ops the forward ran, whatever watched the forward
    block, x = make("mlp")
    block.train()
    want, _ = step(block, x, kernels=False)
    x = x.detach().clone().requires_grad_()
    with FlopCounterMode(display=False) as flops:
        out, counts = calls(block, x)
    assert not counts  # the counter would not know oneDNN's op: it counts both products
    assert flops.get_total_flops() == 2 * 2 * x[..., 0].numel() * block.fc1.in_features * block.fc1.out_features
    (out * torch.linspace(-1, 1, out.shape[-1])).sum().backward()
    assert (x.grad - want[1]).abs().max() <= 1e-5


def test_a_double_backward(recomputing):
    block, x = make("mlp")
    block.train()
    x = x.detach().clone().requires_grad_()
    (gx,) = torch.autograd.grad(block(x).square().sum(), x, create_graph=True)
    gx.square().sum().backward()
    second = [p.grad.clone() for p in block.parameters()]
    block.zero_grad(set_to_none=True)
    with onednn.plain_kernels():
        (px,) = torch.autograd.grad(block(x).square().sum(), x, create_graph=True)
        px.square().sum().backward()
    assert (gx - px).abs().max() <= 1e-4 * px.abs().max()
    for g, p in zip(second, block.parameters(), strict=True):
        assert (g - p.grad).abs().max() <= 1e-4 * max(1.0, p.grad.abs().max().item())


def test_transforms_run_the_modules():
    block, x = make("mlp")
    params = {k: v.detach() for k, v in block.named_parameters()}

    def loss(p, t):
        return torch.func.functional_call(block, p, (t,)).sum()

    counts = collections.Counter()
    with onednn_counted(counts):
        per_image = torch.func.vmap(torch.func.grad(loss), in_dims=(None, 0))(params, x[:, None])
        total = torch.func.grad(loss)(params, x)
    assert not counts
    assert (per_image["fc1.weight"].sum(0) - total["fc1.weight"]).abs().max() <= 1e-4


@pytest.mark.parametrize("early_stop", [True, False], ids=["early stop", "no early stop"])
@pytest.mark.parametrize("case", [c for c in CASES if c != "window attention (Swin)"])
def test_the_recomputation_does_not_run_the_last_product_again(case, early_stop, monkeypatch):
    # the checkpoint stops recomputing as the last product saves its input: that product is not computed
    # (onednn.unused); with the early stop off the recomputation runs to the end, on real values
    monkeypatch.setattr(MLP, "recompute", True)
    monkeypatch.setattr(Attention, "recompute", True)
    block, x = make(case)
    block.train()
    unused = []
    forward = onednn._Unused.forward
    monkeypatch.setattr(onednn._Unused, "forward", staticmethod(lambda *a: unused.append(1) or forward(*a)))
    want, _ = step(block, x, kernels=False)
    with torch.utils.checkpoint.set_checkpoint_early_stop(early_stop):
        got, _ = step(block, x)
    assert len(unused) == early_stop
    for g, w in zip(got, want, strict=True):
        assert (g - w).abs().max() <= 1e-5 * max(1.0, w.abs().max().item())
