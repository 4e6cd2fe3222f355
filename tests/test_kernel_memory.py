"""What the attention modules keep: the kv convolution keeps no copy of the map for the backward."""
import pytest
import torch

from vitdsl.blocks import lookup
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
