"""What the attention modules keep: the kv convolution keeps no copy of the map for the backward (compiled,
it is a Linear over the patches), and the axial ropes of a model share one table."""
import copy

import pytest
import torch
import zoo_small

import vitdsl
from vitdsl.blocks import lookup
from vitdsl.blocks.modules.attention.rope import AxialRope
from vitdsl.blocks.shape import Shape


def saved_shapes(module, x) -> list[tuple[int, ...]]:
    """The shapes of the tensors autograd keeps for the backward of ``module(x)``, weights left out."""
    params = {p.untyped_storage().data_ptr() for p in module.parameters()}
    seen = []

    def pack(t):
        if t.untyped_storage().data_ptr() not in params:
            seen.append(tuple(t.shape))
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        module(x)
    return seen


@pytest.mark.parametrize("kv_norm", ["none", "layer"])
def test_the_kv_convolution_keeps_no_copy_of_the_map(kv_norm):
    # a Linear over the (c r r) patch vectors would keep them, a copy of the map: (B·h·w, 8·4·4)
    shape = Shape.image(8, 8, 8)
    module = lookup("reduced-attn")(heads=2, dim_head=4, kv_reduction=4, kv_norm=kv_norm).build(shape)
    x = torch.randn(2, *shape.dims)
    shapes = saved_shapes(module, x)
    assert (2, 8, 8, 8) in [s for s in shapes if len(s) == 4]  # what the convolution keeps: the normed map
    assert not [s for s in shapes if s[-1] == 8 * 4 * 4]
    with torch.no_grad():  # without gradients: the Linear over the patches, the same maths
        assert (module(x) - module.eval()(x)).abs().max() <= 1e-5


def test_compiled_the_kv_reduction_is_a_linear_over_patches():
    # inductor's training step is faster with the Linear; eagerly the convolution keeps less
    shape = Shape.image(8, 8, 8)
    module = lookup("reduced-attn")(heads=2, dim_head=4, kv_reduction=4).build(shape)
    graphs = []

    def record(gm, example_inputs):
        graphs.append(gm)
        return gm.forward

    x = torch.randn(2, *shape.dims)
    out = torch.compile(module, backend=record, fullgraph=True)(x)
    ops = {getattr(n.target, "__name__", str(n.target)) for g in graphs for n in g.graph.nodes}
    assert "linear" in ops and "conv2d" not in ops
    assert (out - module(x)).abs().max() <= 1e-5
    out.sum().backward()


def ropes(model) -> list[AxialRope]:
    return [m for m in model.modules() if isinstance(m, AxialRope)]


def test_the_blocks_share_one_rope_table():
    overrides = {**zoo_small.SMALL["eva02"], "depth": 3}
    model = vitdsl.build(zoo_small.path("eva02"), overrides=overrides)
    tables = {id(m.sin) for m in ropes(model)} | {id(m.cos) for m in ropes(model)}
    assert len(ropes(model)) == 3 and len(tables) == 2
    twin = copy.deepcopy(model)
    assert len({id(m.sin) for m in ropes(twin)}) == 1 and ropes(twin)[0].sin is not ropes(model)[0].sin
    with torch.inference_mode():  # inference tensors cannot be saved for a backward: not shared
        frozen = vitdsl.build(zoo_small.path("eva02"), overrides=overrides)
    assert ropes(frozen)[0].sin.is_inference() and not ropes(model)[0].sin.is_inference()
    x = torch.randn(2, *model.input_shape)
    model(x).sum().backward()
    with torch.no_grad():
        assert torch.equal(model.eval()(x), twin.eval()(x))
