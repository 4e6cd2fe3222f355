"""The hybrids in blueprints/examples/: blocks from different papers mixed in one blueprint. Each must
build, run forward and backward, and give every parameter a gradient (a block cut off from the loss
would keep none) — except the parameters whose gradient is zero in exact arithmetic, see
`softmax_invariant`."""
from pathlib import Path

import pytest
import torch

import vitdsl

EXAMPLES = sorted((Path(__file__).parents[1] / "blueprints" / "examples").glob("*.yaml"))
SMALL = {  # small enough for CPU, and no 1×1 windows (a lone key's bias gets no gradient)
    "maxvit_mvit": {"image_size": 64, "dims": [16, 32, 64, 64], "depths": [1, 1, 2, 1], "stem": 16, "window": 2,
                    "dim_head": 8, "heads": [1, 2, 2, 2], "kv_strides": [4, 2, 1, 1], "classes": 10},
    "maxvit_cait": {"image_size": 64, "dims": [16, 32, 64, 64], "depths": [1, 1, 2, 1], "stem": 16,
                    "window": 2, "dim_head": 8, "cls_heads": 2, "classes": 10},
    "pvt_v2_map": {"image_size": 64, "dims": [16, 32, 48, 64], "depths": [1, 1, 1, 1], "dim_head": 8,
                   "map_heads": 2, "map_mlp": 64, "classes": 10},
    # window 3 on maps 16, 8, 4, 2: padded to 18, 9, 6 (the shifted blocks too), then one 2×2 window
    "swin_rope_swiglu": {"image_size": 64, "dims": [16, 32, 64, 64], "depths": [2, 2, 2, 2], "window": 3,
                         "dim_head": 8, "classes": 10},
    "twins_crossformer": {"image_size": 64, "dims": [32, 32, 64, 64], "depths": [1, 1, 2, 1],
                          "windows": [4, 2, 2, 2], "reductions": [4, 2, 2, 1], "dim_head": 16, "classes": 10},
    "vivit_maxvit": {"image_size": 32, "frames": 3, "stem": 16, "dims": [16, 32], "depths": [1, 1],
                     "window": 2, "dim_head": 8, "temporal_depth": 2, "heads": 2, "classes": 10},
}


def test_every_example_has_a_small_size():
    assert {p.stem for p in EXAMPLES} == set(SMALL)


def softmax_invariant(model):
    """The output bias of each dynamic position MLP (CrossFormer's): it adds one constant to every logit
    of every window, which softmax cancels, so its gradient is zero in exact arithmetic and only rounding
    noise (or exactly 0, depending on the summation order of the CPU) in float32."""
    return {f"{name}.rel_pos_mlp.{len(m.rel_pos_mlp) - 1}.bias": m for name, m in model.named_modules()
            if getattr(m, "rel_pos_mlp", None) is not None}


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_example_trains(path):
    torch.manual_seed(0)
    model = vitdsl.build(path, overrides=SMALL[path.stem]).train()
    x = torch.randn(2, *model.input_shape)
    out = model(x)
    assert out.shape == (2, *model.output_shape)
    out.square().mean().backward()
    invariant = softmax_invariant(model)
    grads = dict(model.named_parameters())
    missing = [n for n, p in grads.items() if n not in invariant and (p.grad is None or not p.grad.abs().sum() > 0)]
    assert all(p.requires_grad for p in model.parameters())
    assert not missing, f"parameters without a gradient: {missing}"
    for name, attn in invariant.items():
        last = attn.rel_pos_mlp[-1]
        assert last.out_features == 1, f"{name}: one bias for all logits"
        # Rounding leaves ~1e-6 of the gradient of the layer's weight; a real dependence would be ~1.
        assert grads[name].grad.abs().max() <= 1e-4 * last.weight.grad.abs().max(), name
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())
    summary = vitdsl.summary(path, overrides=SMALL[path.stem])
    assert summary.total_params == sum(p.numel() for p in model.parameters())


def test_dynamic_bias_output_bias_is_softmax_invariant():
    """Why `softmax_invariant` may keep no gradient: shifting that bias leaves the output unchanged."""
    torch.manual_seed(0)
    name = "twins_crossformer"
    model = vitdsl.build(EXAMPLES[[p.stem for p in EXAMPLES].index(name)], overrides=SMALL[name]).eval()
    invariant = softmax_invariant(model)
    assert len(invariant) == sum(SMALL[name]["depths"])  # one per local attention block
    x = torch.randn(2, *model.input_shape)
    with torch.no_grad():
        before = model(x)
        for attn in invariant.values():
            attn.rel_pos_mlp[-1].bias += 3.0
        after = model(x)
        # float32 rounding of logits shifted by 3 moves the output by a few ulps of its scale
        torch.testing.assert_close(after, before, rtol=0, atol=1e-5 * before.abs().max().item())
        for attn in invariant.values():  # while the same layer's weight does matter
            attn.rel_pos_mlp[-1].weight += 3.0
        assert (model(x) - before).abs().max() > 1e-3 * before.abs().max()


def test_the_summary_names_each_mixed_in_attention():
    """The pattern column says what each paper's attention does (issue 14's names), in the hybrids that mix them."""
    def patterns(name, variant=None):
        return {node.spec.pattern(*inputs) for node, inputs, _ in vitdsl.validate(name, variant)}

    assert {"shifted window 7×7, rope", "window 7×7, rope"} <= patterns("examples/swin_rope_swiglu")
    assert "pooled q ×1, kv ×8, rel-pos decomposed" in patterns("examples/maxvit_mvit")
    assert "pooled q/kv ×2, rel-pos decomposed" in patterns("mvitv2")
    assert {"channel groups", "window 7×7"} <= patterns("davit")
    assert "global, rope mixed" in {node.spec.pattern(*inputs) for node, inputs, _ in
                                    vitdsl.validate("rope_vit", overrides={"rope": "mixed"})}
