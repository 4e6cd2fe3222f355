"""On the CPU the blocks' Linear layers run on oneDNN, in inference with the activation after them or the residual
add fused in (``vitdsl/blocks/modules/onednn.py``): the same outputs as the modules up to the GEMM's order of
sums, and never where anything could tell (autocast, a hook, a FLOP counter, a compiler). Training:
tests/test_onednn_training.py."""
import collections
import sys
from pathlib import Path

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from vitdsl.blocks import lookup
from vitdsl.blocks.modules import onednn
from vitdsl.blocks.shape import Shape

sys.path.insert(0, str(Path(__file__).parents[1] / "benchmarks"))
from probes import onednn_counted  # noqa: E402

D, N, B = 16, 50, 4
TOKENS = Shape.tokens(N, D)

# block: (kind, fields, shape, the oneDNN calls one forward makes by what they fuse)
CASES = {
    "mlp": ("mlp", {"mult": 4}, TOKENS, {"gelu": 1, "add": 1}),
    "mlp, tanh GELU": ("mlp", {"mult": 4, "act": "gelu-tanh"}, TOKENS, {"gelu": 1, "add": 1}),
    "mlp, relu": ("mlp", {"mult": 4, "act": "relu"}, TOKENS, {"relu": 1, "add": 1}),
    "mlp, silu": ("mlp", {"mult": 4, "act": "silu"}, TOKENS, {"swish": 1, "add": 1}),
    "mlp, hardswish": ("mlp", {"mult": 4, "act": "hardswish"}, TOKENS, {"hardswish": 1, "add": 1}),
    "mlp, sigmoid": ("mlp", {"mult": 4, "act": "sigmoid"}, TOKENS, {"sigmoid": 1, "add": 1}),
    "mlp, tanh": ("mlp", {"mult": 4, "act": "tanh"}, TOKENS, {"tanh": 1, "add": 1}),
    "mlp, SwiGLU and a norm": ("mlp", {"mult": 4, "gate": "swiglu", "gate_norm": True}, TOKENS,
                               {"none": 1, "add": 1}),
    "mlp, layer scale": ("mlp", {"mult": 4, "layer_scale": 0.1}, TOKENS, {"gelu": 1, "none": 1}),
    "mlp, post norm": ("mlp", {"mult": 4, "norm": "post"}, TOKENS, {"gelu": 1, "none": 1}),
    "mlp, no residual": ("mlp", {"mult": 4, "residual": False}, TOKENS, {"gelu": 1, "none": 1}),
    "mlp, batch norms (LeViT)": ("mlp", {"mult": 2, "proj_norm": "batch"}, TOKENS, {"none": 2}),
    "mlp, depthwise conv (PVT v2)": ("mlp", {"mult": 4, "dwconv": 3}, Shape.image(D, 5, 10), {"none": 1, "add": 1}),
    "attention": ("global-attn", {"heads": 2, "dim_head": 8}, TOKENS, {"none": 1, "add": 1}),
    "attention, q and v biases (BEiT)": ("global-attn", {"heads": 2, "dim_head": 8, "qkv_bias": "qv"}, TOKENS,
                                         {"none": 1, "add": 1}),
    "attention, RoPE (EVA-02)": ("global-attn", {"heads": 2, "dim_head": 8, "rope": "axial"},
                                 Shape.tokens(N, D, grid=(5, 10)), {"none": 1, "add": 1}),
    "attention, layer scale": ("global-attn", {"heads": 2, "dim_head": 8, "layer_scale": 0.1}, TOKENS,
                               {"none": 2}),
    "window attention (Swin)": ("local-attn", {"heads": 2, "dim_head": 8, "window": 5}, Shape.image(D, 10, 10),
                                {"none": 2}),
}


def make(case: str):
    kind, fields, shape, _ = CASES[case]
    torch.manual_seed(0)
    block = lookup(kind)(**fields).build(shape).eval()
    # the class switches decide (test_onednn_training), also for the gate and RoPE, off on their modules by default
    block.__dict__.pop("recompute", None)
    for name, b in block.named_buffers():  # batch norms with statistics of their own
        if name.endswith("running_var"):
            b.uniform_(0.5, 1.5)
        elif name.endswith("running_mean"):
            b.normal_()
    return block, torch.randn(B, *shape.dims)


def calls(block, x, *args) -> tuple[torch.Tensor, collections.Counter]:
    counts = collections.Counter()
    with onednn_counted(counts):
        out = block(x, *args)
    return out, counts


def plain(block, x) -> torch.Tensor:
    """The block as its modules compute it."""
    with onednn.plain_kernels():
        return block(x)


@pytest.mark.parametrize("case", CASES)
def test_blocks_run_on_onednn_with_the_same_outputs(case):
    block, x = make(case)
    with torch.no_grad():
        out, counts = calls(block, x)
        want = plain(block, x)
    assert counts == CASES[case][3]
    assert (out - want).abs().max() <= 1e-5
    assert out.shape == want.shape and out.is_contiguous() == want.is_contiguous()


@pytest.mark.parametrize("case", ["mlp", "attention"])
def test_nothing_runs_on_onednn_where_it_could_show(case):
    block, x = make(case)
    with torch.no_grad():
        want = plain(block, x)
        with torch.autocast("cpu", dtype=torch.bfloat16):  # autocast casts F.linear, not oneDNN's op
            out, counts = calls(block, x)
            cast = plain(block, x)
        assert not counts and torch.equal(out, cast)
        assert not calls(block.double(), x.double())[1]
        block.float()
        with FlopCounterMode(display=False) as flops:  # a dispatch mode: it would not know the op
            out, counts = calls(block, x)
        assert not counts and flops.get_total_flops() > 0
        assert (out - want).abs().max() == 0
        with torch.backends.mkldnn.flags(enabled=False):
            assert not calls(block, x)[1]


def test_training_mode_fuses_no_residual():
    block, x = make("mlp")
    with torch.no_grad():
        out, counts = calls(block.train(), x)  # drop path would sit between the product and the add
    assert counts == {"gelu": 1, "none": 1}


def test_a_hook_sees_its_module_run():
    block, x = make("mlp")
    seen = []
    block.fc2.register_forward_hook(lambda m, args, out: seen.append(out.shape))
    with torch.no_grad():
        out, counts = calls(block, x)
    assert seen == [torch.Size([B, N, D])]
    assert counts == {"gelu": 1}  # fc1 and its activation have no hook: still fused
    handle = torch.nn.modules.module.register_module_forward_hook(lambda *_: None)
    try:
        with torch.no_grad():
            assert not calls(block, x)[1]  # a global hook watches every module
    finally:
        handle.remove()


def test_a_replaced_linear_runs_as_itself():
    block, x = make("mlp")

    class Adapted(torch.nn.Linear):  # LoRA and quantized layers replace the Linear with a module of their own
        def forward(self, t):
            return super().forward(t) * 2

    adapted = Adapted(block.fc1.in_features, block.fc1.out_features)
    adapted.load_state_dict(block.fc1.state_dict())
    block.fc1 = adapted
    with torch.no_grad():
        out, counts = calls(block, x)
        want = plain(block, x)
    assert counts == {"add": 1}
    assert (out - want).abs().max() <= 1e-5


def test_the_global_switch(monkeypatch):
    block, x = make("mlp")
    monkeypatch.setattr(onednn, "ONEDNN", False)
    with torch.no_grad():
        out, counts = calls(block, x)
        assert not counts and torch.equal(out, plain(block, x))


def test_exported_graphs_hold_the_plain_ops():
    block, x = make("mlp")
    with torch.no_grad():
        program = torch.export.export(block, (x,))
    targets = {str(n.target) for n in program.graph.nodes if n.op == "call_function"}
    assert not any("mkldnn" in t for t in targets)
    assert "aten.gelu.default" in targets


def test_the_rows_path_and_the_linear_helper_agree():
    # TokenAttention's rows path (the last block's class token) projects with cut weights: plain F.linear
    block, x = make("attention")
    with torch.no_grad():
        out, counts = calls(block, x, None, None, 1)
        want = block(x)[:, :1]
    assert counts == {"none": 1}  # the output projection; the residual is joined after
    assert (out - want).abs().max() <= 1e-5
    lin = torch.nn.Linear(D, 3)
    with torch.no_grad():
        y = onednn.linear(x, lin, residual=torch.ones(B, N, 3))
    assert (y - lin(x) - 1).abs().max() <= 1e-6
