"""In CPU inference, an MLP whose hidden activation is over 32 MiB runs in slices (``blocks/modules/mlp.py``):
of tokens, or of whole images when a depthwise conv mixes neighbouring tokens. The same rows as one pass, and
never compiled. Training's slices, of another size: ``test_mlp_train_slices.py``."""
import pytest
import torch

import vitdsl.blocks.modules.mlp as mlp_module
from vitdsl.blocks import lookup
from vitdsl.blocks.shape import Shape
from vitdsl.interop import timm as vt


def fc1_calls(module, x) -> tuple[int, torch.Tensor]:
    """How many times fc1 runs in ``module(x)``, and the output."""
    calls = []
    hook = module.fc1.register_forward_hook(lambda *_: calls.append(1))
    try:
        out = module(x)
    finally:
        hook.remove()
    return len(calls), out


@pytest.fixture
def small_slices(monkeypatch):
    # the rule at a test's size: hiddens over 64 KiB, slices of 16 KiB of hidden (at least 16 rows)
    monkeypatch.setattr(mlp_module, "SLICE_ABOVE", 64 << 10)
    monkeypatch.setattr(mlp_module, "SLICE_BYTES", 16 << 10)
    monkeypatch.setattr(mlp_module, "SLICE_ROWS", 16)


# field values, input shape, slices for a batch of 3: a hidden of 64 floats (256 bytes) a token is sliced 64
# tokens at a time, a gated one (fc1 gives 128) 32 at a time
CASES = {
    "tokens": ({"mult": 4}, Shape.tokens(300, 16), 900 // 64 + 1),
    "map (Swin)": ({"mult": 4}, Shape.image(16, 12, 20), 720 // 64 + 1),
    "gated (SwiGLU)": ({"mult": 4, "gate": "swiglu"}, Shape.tokens(300, 16), 900 // 32 + 1),
    "post norm, layer scale": ({"mult": 4, "norm": "post", "layer_scale": 0.1}, Shape.tokens(300, 16), 15),
    # 240 tokens × 256 bytes = 60 KiB of hidden an image: one image a slice
    "depthwise conv (PVT v2)": ({"mult": 4, "dwconv": 3}, Shape.image(16, 12, 20), 3),
}


@pytest.mark.parametrize("case", CASES)
def test_inference_slices_a_large_hidden_and_gives_the_same_rows(small_slices, case):
    fields, shape, slices = CASES[case]
    module = lookup("mlp")(**fields).build(shape).eval()
    x = torch.randn(3, *shape.dims)
    whole_calls, whole = fc1_calls(module, x)  # gradients on: one pass, autograd keeps the hidden
    assert whole_calls == 1
    with torch.no_grad():
        calls, out = fc1_calls(module, x)
    assert calls == slices
    assert out.shape == whole.shape and out.stride() == whole.stride()
    assert (out - whole).abs().max() <= 1e-5


@pytest.mark.parametrize("fields", [{"mult": 4, "residual": False}, {"mult": 4}])
def test_under_autocast_the_slices_give_the_dtype_of_one_pass(small_slices, monkeypatch, fields):
    module = lookup("mlp")(**fields).build(Shape.tokens(300, 16)).eval()
    x = torch.randn(3, 300, 16)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        calls, out = fc1_calls(module, x)
        monkeypatch.setattr(mlp_module, "SLICE_ABOVE", 1 << 30)
        whole_calls, whole = fc1_calls(module, x)
    assert (calls, whole_calls) == (15, 1)
    assert out.dtype == whole.dtype == (torch.float32 if module.residual else torch.bfloat16)
    # a bf16 product of a row subset may round differently by an ulp (2^-7 near 1) on another CPU
    assert (out.float() - whole.float()).abs().max() <= 0.05


def test_training_small_hiddens_and_one_image_through_a_conv_run_in_one_pass(small_slices):
    shape = Shape.image(16, 12, 20)
    module = lookup("mlp")(mult=4).build(shape)
    x = torch.randn(3, *shape.dims)
    with torch.no_grad():
        assert fc1_calls(module.train(), x)[0] == 1  # train mode: batch-norm statistics, dropout
        assert fc1_calls(module.eval(), x[:, :, :2, :2])[0] == 1  # 12 tokens: 12 KiB of hidden
        conv = lookup("mlp")(mult=4, dwconv=3).build(shape).eval()  # the depthwise conv mixes neighbours
        assert fc1_calls(conv, x[:1])[0] == 1 and fc1_calls(conv, x)[0] == 3


def test_compiled_the_mlp_is_one_pass(small_slices):
    shape = Shape.tokens(300, 16)
    module = lookup("mlp")(mult=4).build(shape).eval()
    graphs = []

    def record(gm, example_inputs):
        graphs.append(gm)
        return gm.forward

    x = torch.randn(3, *shape.dims)
    with torch.no_grad():
        out = torch.compile(module, backend=record, fullgraph=True)(x)
        eager = module(x)
    # the products: oneDNN's while compiling (onednn.py)
    products = [n for g in graphs for n in g.graph.nodes if str(n.target).startswith("vitdsl.linear")]
    assert len(products) == 2 and (out - eager).abs().max() <= 1e-5


def test_swin_t_slices_its_first_stage_mlps_at_batch_8():
    # with the real rule: 25088 tokens × 384 hidden × 4 bytes = 36.75 MiB, in slices of 2730 rows (4 MiB)
    model = vt.build("swin_tiny_patch4_window7_224").eval()
    mlps = [m for m in model.modules() if isinstance(m, mlp_module.MLP)]
    assert len(mlps) == 12
    maps = {96: (56, 56), 192: (28, 28), 384: (14, 14), 768: (7, 7)}
    with torch.no_grad():
        rows = {b: [m.slice_step(torch.empty(b, *maps[m.fc1.in_features], m.fc1.in_features)) for m in mlps]
                for b in (1, 8)}
    assert rows[8] == [2730, 2730] + [None] * 10
    assert rows[1] == [None] * 12


def test_pvt_v2_b1_slices_its_first_stage_mlps_by_image_at_batch_8():
    # 8 × 3136 tokens × 512 hidden × 4 bytes = 49 MiB; an image's 6.1 MiB is over a slice's 4 MiB: one a slice
    model = vt.build("pvt_v2_b1").eval()
    first = [m for m in model.modules() if isinstance(m, mlp_module.MLP) and m.fc1.in_features == 64]
    assert len(first) == 2 and all(m.dwconv is not None for m in first)
    with torch.no_grad():
        assert [m.slice_step(torch.empty(8, 56, 56, 64)) for m in first] == [1, 1]
        assert [m.slice_step(torch.empty(1, 56, 56, 64)) for m in first] == [None, None]
