"""While compiling, the blocks' products stay on oneDNN as the custom ops ``vitdsl::linear`` and
``vitdsl::linear_add`` (``vitdsl/blocks/modules/onednn.py``): the compiled graph fuses what eager inference fuses,
gives the eager outputs and gradients, and holds PyTorch's own ops wherever eager would (autocast, float64, a hook,
the switches) and in an exported program."""
import collections

import pytest
import torch
from test_onednn import CASES, make

from vitdsl.blocks import lookup
from vitdsl.blocks.modules import heap, onednn
from vitdsl.blocks.shape import Shape

OURS = {"vitdsl.linear.default", "vitdsl.linear_add.default"}


def compiled(block, x, **kwargs) -> tuple[torch.Tensor, collections.Counter]:
    """``block(x)`` compiled (the graph run as it is), and its oneDNN products by what they fuse, as
    ``test_onednn.calls`` counts the eager ones."""
    counts = collections.Counter()

    def backend(gm, inputs):
        for node in gm.graph.nodes:
            if str(node.target) == "vitdsl.linear.default":
                counts[node.args[3]] += 1
            elif str(node.target) == "vitdsl.linear_add.default":
                counts["add"] += 1
        return gm

    torch._dynamo.reset()
    return torch.compile(block, backend=backend, fullgraph=True, **kwargs)(x), counts


@pytest.mark.parametrize("case", CASES)
def test_compiled_inference_fuses_as_eager(case):
    block, x = make(case)
    with torch.no_grad():
        out, counts = compiled(block, x)
        want = block(x)
    assert counts == CASES[case][3]
    assert (out - want).abs().max() <= 1e-6


@pytest.mark.parametrize("case", ["mlp", "mlp, SwiGLU and a norm", "attention, RoPE (EVA-02)",
                                  "window attention (Swin)", "mlp, depthwise conv (PVT v2)"])
def test_compiled_training_gives_the_eager_gradients(case):
    block, x = make(case)
    block.train()
    x.requires_grad_(True)
    grad = torch.randn_like(block(x))
    want = torch.autograd.grad(block(x), [x, *block.parameters()], grad)
    torch._dynamo.reset()
    graphs = []

    def backend(gm, inputs):
        from torch._functorch.aot_autograd import aot_module_simplified

        def keep(g, _):
            graphs.append({str(n.target) for n in g.graph.nodes})
            return g
        return aot_module_simplified(gm, inputs, fw_compiler=keep, bw_compiler=keep)

    out = torch.compile(block, backend=backend, fullgraph=True)(x)
    got = torch.autograd.grad(out, [x, *block.parameters()], grad)
    forward, backward = graphs
    assert "vitdsl.linear.default" in forward and "vitdsl.linear_input_grad.default" in backward
    assert "aten.addmm.default" not in forward
    assert max((a - b).abs().max().item() for a, b in zip(got, want)) <= 1e-5


def test_compiled_plain_where_eager_is_plain(monkeypatch):
    block, x = make("mlp")
    with torch.no_grad():
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out, counts = compiled(block, x)
            assert not counts and torch.equal(out, block(x))  # autocast casts F.linear, not oneDNN's op
        assert not compiled(block.double(), x.double())[1]
        block.float()
        block.fc2.register_forward_hook(lambda *_: None)
        assert compiled(block, x)[1] == {"gelu": 1}  # fc2 runs as its module, for its hook
        monkeypatch.setattr(onednn, "ONEDNN", False)
        assert not compiled(block, x)[1]


def test_exported_and_strictly_exported_programs_hold_plain_ops():
    block, x = make("attention")
    for strict in (False, True):
        with torch.no_grad():
            program = torch.export.export(block, (x,), strict=strict)
        targets = {str(n.target) for n in program.graph.nodes}
        assert not targets & (OURS | {"vitdsl.linear_input_grad.default"}), strict


def test_inductor_compiles_the_products_and_matches():
    block, x = make("mlp, SwiGLU and a norm")
    torch._dynamo.reset()
    with torch.no_grad():
        assert (torch.compile(block)(x) - block(x)).abs().max() <= 1e-5
    block.train()
    x.requires_grad_(True)
    want = torch.autograd.grad(block(x).sum(), x)[0]
    got = torch.autograd.grad(torch.compile(block)(x).sum(), x)[0]
    assert (got - want).abs().max() <= 1e-5


def test_a_strided_residual_gives_a_contiguous_output_as_declared():
    lin = torch.nn.Linear(8, 6)
    x, residual = torch.randn(2, 5, 8), torch.randn(2, 6, 5).transpose(1, 2)
    with torch.no_grad():
        want = lin(x) + residual

        def add(x, residual):
            return onednn.linear(x, lin, residual=residual) * 2

        torch._dynamo.reset()
        got = torch.compile(add)(x, residual)
    assert (got - 2 * want).abs().max() <= 1e-5
    # the fake (meta) functions against the real ops: shapes, strides, dtypes; the products' own backward too
    w, b = lin.weight.detach(), lin.bias.detach()
    torch.library.opcheck(torch.ops.vitdsl.linear_add.default, (x, residual, w, b))
    torch.library.opcheck(torch.ops.vitdsl.linear.default, (x, w, b, "gelu", "none"))
    torch.library.opcheck(torch.ops.vitdsl.linear.default, (x.requires_grad_(), w.requires_grad_(), b, "none", ""))
    torch.library.opcheck(torch.ops.vitdsl.linear_input_grad.default, (torch.randn(2, 5, 6), w.detach()))


@pytest.mark.parametrize("patch", [14, 16])
def test_compiled_patches_of_a_width_not_a_power_of_two_run_as_the_convolution(patch):
    # inductor's copy that cuts such patches runs scalar (Patchify.convolves); eagerly the Linear either way
    block = lookup("patchify")(patch=patch, dim=24, order="chw").build(Shape.image(3, 2 * patch, 3 * patch)).eval()
    x = torch.randn(2, 3, 2 * patch, 3 * patch)
    ops = set()

    def backend(gm, inputs):
        ops.update(str(n.target) for n in gm.graph.nodes)
        return gm

    torch._dynamo.reset()
    with torch.no_grad():
        got, want = torch.compile(block, backend=backend, fullgraph=True)(x), block(x)
    assert ("conv2d" in str(ops)) == (patch == 14), ops
    assert (got - want).abs().max() <= 1e-5


def test_compiled_inference_runs_a_product_with_a_freshly_mapped_output_as_aten(monkeypatch):
    # B·N tokens: fc1's output of width 4·D is over the threshold, fc2's of width D under it; aten's product then,
    # whose output buffer inductor reuses, where oneDNN would allocate fresh pages on every call
    block, x = make("mlp")
    monkeypatch.setattr(heap, "MAPPED_FRESH_ABOVE", x.numel() * 4 * 2)
    with torch.no_grad():
        out, counts = compiled(block, x)
        assert counts == {"add": 1}
        assert (out - block(x)).abs().max() <= 1e-5
    block.train()
    x.requires_grad_(True)
    ops = collections.Counter()

    def backend(gm, inputs):
        ops.update(str(n.target) for n in gm.graph.nodes)
        return gm

    torch._dynamo.reset()
    torch.compile(block, backend=backend, fullgraph=True)(x)
    assert ops["vitdsl.linear.default"] == 2  # training keeps both products on oneDNN
