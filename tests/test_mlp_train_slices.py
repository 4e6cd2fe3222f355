"""In CPU training, a recomputing MLP whose hidden activation is over 32 MiB runs in slices too
(``blocks/modules/mlp.py``, TRAIN_SLICE_BYTES), each slice recomputing on its own: the gradients of one pass,
and one pass wherever a slice could compute something else (dropout, a batch norm, off the CPU)."""
import pytest
import torch

import vitdsl.blocks.modules.common as common
import vitdsl.blocks.modules.mlp as mlp_module
from vitdsl.blocks import lookup
from vitdsl.blocks.modules import onednn
from vitdsl.blocks.shape import Shape
from vitdsl.interop import timm as vt


@pytest.fixture
def small_slices(monkeypatch):
    # the rule at a test's size: hiddens over 64 KiB, slices of 16 KiB of hidden (at least 16 rows)
    monkeypatch.setattr(mlp_module, "SLICE_ABOVE", 64 << 10)
    monkeypatch.setattr(mlp_module, "TRAIN_SLICE_BYTES", 16 << 10)
    monkeypatch.setattr(mlp_module, "SLICE_ROWS", 16)


@pytest.fixture
def regions(monkeypatch):
    """The recomputed regions a call runs (one per slice), by the tokens each takes."""
    seen = []
    real = common.recomputed

    def counted(fn, x, last):
        seen.append(x.numel() // x.shape[-1])
        return real(fn, x, last)
    monkeypatch.setattr(common, "recomputed", counted)
    return seen


def grads(module, x, seed=3):
    """The output and the gradients of the input and of every parameter, from one forward and backward."""
    x = x.detach().clone().requires_grad_()
    module.zero_grad(set_to_none=True)
    torch.manual_seed(seed)
    out = module(x)
    (out * torch.linspace(-1, 1, out.shape[-1])).sum().backward()
    return [out.detach(), x.grad, *(p.grad for p in module.parameters())]


# field values, input shape (a batch of 3), the tokens of each slice: a hidden of 64 floats (256 bytes) a token
# is sliced 64 tokens at a time, a gated one (fc1 gives 128) 32 at a time, a map with a depthwise conv by image
CASES = {
    "tokens": ({"mult": 4}, Shape.tokens(300, 16), [64] * 14 + [4]),
    "map (Swin)": ({"mult": 4}, Shape.image(16, 12, 20), [64] * 11 + [16]),
    "gated (SwiGLU)": ({"mult": 4, "gate": "swiglu"}, Shape.tokens(300, 16), [32] * 28 + [4]),
    "post norm, layer scale, drop path": ({"mult": 4, "norm": "post", "layer_scale": 0.1, "drop_path": 0.5},
                                          Shape.tokens(300, 16), [64] * 14 + [4]),
    "depthwise conv (PVT v2)": ({"mult": 4, "dwconv": 3}, Shape.image(16, 12, 20), [240] * 3),
}


@pytest.mark.parametrize("case", CASES)
def test_training_slices_a_large_hidden_with_the_gradients_of_one_pass(small_slices, regions, case):
    fields, shape, rows = CASES[case]
    module = lookup("mlp")(**fields).build(shape).train()
    module.recompute = True  # a gated MLP trains in one pass unless asked
    x = torch.randn(3, *shape.dims)
    got = grads(module, x)
    assert regions == rows
    with onednn.plain_kernels():
        module.recompute = False  # one pass, as the modules compute it
        want = grads(module, x)
    for g, w in zip(got, want, strict=True):
        assert g.shape == w.shape and (g - w).abs().max() <= 1e-5 * max(1.0, w.abs().max().item())


@pytest.mark.parametrize("fields", [{"mult": 4, "dropout": 0.1}, {"mult": 4, "norm_type": "batch"}])
def test_training_in_one_pass_where_a_slice_would_differ(small_slices, regions, fields):
    # dropout draws its masks per call, a batch norm its statistics over what it sees
    module = lookup("mlp")(**fields).build(Shape.tokens(300, 16)).train()
    grads(module, torch.randn(3, 300, 16))
    assert regions == [900]


def test_small_hiddens_and_the_meta_device_train_in_one_pass(small_slices, regions):
    module = lookup("mlp")(mult=4).build(Shape.tokens(300, 16)).train()
    grads(module, torch.randn(3, 60, 16))  # 180 tokens × 256 bytes = 45 KiB of hidden
    assert regions == [180]
    module.to("meta")
    assert module.train_slice_step(torch.empty(3, 300, 16, device="meta", requires_grad=True)) is None


def test_pvt_v2_b1_trains_its_first_stage_mlps_four_images_a_slice_at_batch_16():
    # 16 × 3136 tokens × 512 hidden × 4 bytes = 98 MiB; an image's 6.1 MiB, so 2 images in a 16 MiB slice
    model = vt.build("pvt_v2_b1").train()
    first = [m for m in model.modules() if isinstance(m, mlp_module.MLP) and m.fc1.in_features == 64]
    assert len(first) == 2
    x = torch.empty(16, 56, 56, 64, requires_grad=True)
    assert [m.train_slice_step(x) for m in first] == [2, 2]
    assert [m.train_slice_step(x[:2]) for m in first] == [None, None]
