"""In compiled training a depthwise convolution over a channels-last map (an MLP's ``dwconv``, PVT v2's) is the
custom op ``vitdsl::depthwise`` (``vitdsl/blocks/modules/depthwise.py``), whose backward hands the convolution
channels-last tensors; it gives the eager gradients, and everywhere else the module's own convolution runs."""
import pytest
import torch
from test_onednn import make
from torch import nn
from torch._functorch.aot_autograd import aot_module_simplified

from vitdsl.blocks import lookup
from vitdsl.blocks.modules import depthwise
from vitdsl.blocks.shape import Shape

OP, BACKWARD = "vitdsl.depthwise.default", "vitdsl.depthwise_backward.default"


def graphs_of(block, x):
    """``block(x)`` compiled (the graphs run as they are) and the op names of its forward and backward graphs."""
    graphs = []

    def keep(g, _):
        graphs.append({str(n.target) for n in g.graph.nodes})
        return g

    def backend(gm, inputs):
        return aot_module_simplified(gm, inputs, fw_compiler=keep, bw_compiler=keep)

    torch._dynamo.reset()
    return torch.compile(block, backend=backend, fullgraph=True)(x), graphs


def assert_trains_as_the_op(block, x):
    """``block``'s compiled training step on ``x`` runs the op and its backward, no convolution of PyTorch's, and
    gives the eager gradients."""
    x.requires_grad_(True)
    grad = torch.randn_like(block(x))
    want = torch.autograd.grad(block(x), [x, *block.parameters()], grad)
    out, graphs = graphs_of(block, x)
    got = torch.autograd.grad(out, [x, *block.parameters()], grad)
    forward, backward = graphs  # the backward's, compiled as it runs
    assert OP in forward and "aten.convolution.default" not in forward
    assert BACKWARD in backward and "aten.convolution_backward.default" not in backward
    assert max((a - b).abs().max().item() for a, b in zip(got, want)) <= 1e-5


def test_compiled_training_runs_the_op_and_gives_the_eager_gradients():
    block, x = make("mlp, depthwise conv (PVT v2)")
    assert_trains_as_the_op(block.train(), x)


@pytest.mark.parametrize("stride", [1, 2])
def test_mbconv_depthwise_with_tensorflow_same_padding_gives_the_eager_gradients(stride):
    # MaxViT's (tf): the odd pixel of SAME padding after, given to the op as its own padding
    from vitdsl.blocks.modules.conv import ConvNormAct
    block = ConvNormAct(8, 8, 3, stride, "same", False, "batch", "gelu", groups=8).train()
    assert_trains_as_the_op(block, torch.randn(2, 8, 7, 6))


@pytest.mark.parametrize("shape, fields", [
    (Shape.tokens(20, 16, grid=(4, 5)), {"kernel": 3, "convs": 1, "norm": "none"}),  # a position encoding (Twins)
    (Shape.image(16, 4, 5), {"kernel": 3}),  # conv, GELU, batch norm, conv (XCiT's LPI)
])
def test_the_dwconv_block_runs_its_convolutions_as_the_op(shape, fields):
    block = lookup("dwconv")(**fields).build(shape).train()
    assert_trains_as_the_op(block, torch.randn(2, *shape.dims))


def test_inductor_compiles_the_op_and_matches():
    block, x = make("mlp, depthwise conv (PVT v2)")
    block.train()
    x.requires_grad_(True)
    want = torch.autograd.grad(block(x).square().sum(), [x, block.dwconv.weight, block.dwconv.bias])
    torch._dynamo.reset()
    got = torch.autograd.grad(torch.compile(block)(x).square().sum(), [x, block.dwconv.weight, block.dwconv.bias])
    assert max((a - b).abs().max().item() / (b.abs().max().item() + 1) for a, b in zip(got, want)) <= 1e-5


def test_without_gradients_the_compiled_graph_keeps_the_convolution():
    block, x = make("mlp, depthwise conv (PVT v2)")
    with torch.no_grad():
        out, (graph,) = graphs_of(block, x)
        assert OP not in graph and "aten.convolution.default" in graph
        assert (out - block(x)).abs().max() <= 1e-5


@pytest.mark.parametrize("change", ["none", "stride 2", "uneven stride", "dilation", "uneven padding",
                                    "reflect padding", "hook", "float64", "no gradients"])
def test_only_a_plain_depthwise_convolution_in_training_runs_as_the_op(change):
    conv = nn.Conv2d(6, 6, 3, padding=1, groups=6)
    x = torch.randn(2, 5, 7, 6, requires_grad=True)
    if change == "stride 2":
        conv.stride = (2, 2)
    elif change == "uneven stride":
        conv.stride = (2, 1)
    elif change == "dilation":
        conv.dilation = (2, 2)
    elif change == "uneven padding":
        conv.padding = (1, 0)
    elif change == "reflect padding":
        conv.padding_mode = "reflect"
    elif change == "hook":
        conv.register_forward_hook(lambda *_: None)
    elif change == "float64":
        conv, x = conv.double(), x.double()
    seen = []

    def probe(x):
        seen.append(depthwise._as_op(x, conv))
        return depthwise.depthwise(x, conv)

    torch._dynamo.reset()
    with torch.set_grad_enabled(change != "no gradients"):
        got, want = torch.compile(probe, backend="eager", fullgraph=True)(x), conv(x.permute(0, 3, 1, 2))
    assert seen == [change in ("none", "stride 2")]
    assert (got - want.permute(0, 2, 3, 1)).abs().max() <= 1e-6


def test_the_ops_declare_what_they_return():
    # the fake (meta) functions against the real ops: shapes, strides, dtypes; the op's own backward too
    x, w, b = torch.randn(2, 5, 7, 6), torch.randn(6, 1, 3, 3), torch.randn(6)
    for stride, pads in ((1, [1] * 4), (1, [0] * 4), (2, [0, 1, 0, 1]), (2, [1, 0, 2, 1])):
        torch.library.opcheck(torch.ops.vitdsl.depthwise.default,
                              (x.detach().requires_grad_(), w.detach().requires_grad_(), b, stride, pads))
        torch.library.opcheck(torch.ops.vitdsl.depthwise.default, (x.detach(), w.detach(), None, stride, pads))
        out = torch.ops.vitdsl.depthwise.default(x, w, None, stride, pads)
        for input_grad in (True, False):
            torch.library.opcheck(torch.ops.vitdsl.depthwise_backward.default,
                                  (torch.randn_like(out), x.detach(), w.detach(), stride, pads, input_grad))


def test_exported_programs_hold_the_convolution():
    block, x = make("mlp, depthwise conv (PVT v2)")
    block.train()
    program = torch.export.export(block, (x,))
    targets = {str(n.target) for n in program.graph.nodes}
    assert OP not in targets and "aten.conv2d.default" in targets
