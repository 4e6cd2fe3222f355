"""Twins-SVT and ScalableViT: reduced-attn on feature maps (kv sub-sampling, key width ≠ value width,
value conv), local-attn with a value conv and whole-map windows, patchify to a map, the errors,
and the sub-block orders of both references."""
import pytest
import torch
from rules_check import assert_block_agrees
from vit_pytorch import scalable_vit, twins_svt

import vitdsl
from vitdsl.blocks.attention import GlobalAttn, LocalAttn, MemoryAttn, ReducedAttn
from vitdsl.blocks.embed import Patchify
from vitdsl.blocks.shape import Shape
from vitdsl.errors import ShapeError, VitdslError
from vitdsl.interop.vit_pytorch import import_weights

ONE_BLOCK = """\
name: t
input: {image: [16, 8, 8]}
layers:
%s
  - pool: mean
"""


def one_block(items: str):
    return vitdsl.loads(ONE_BLOCK % items)


def rules_agree(spec, x: Shape):
    """The spec's shape, parameter and FLOP rules equal its module's (as tests/test_rules.py)."""
    assert_block_agrees(spec, x)


# -- errors --------------------------------------------------------------------------------------
def test_kv_reduction_must_divide_the_map():
    with pytest.raises(ShapeError) as e:
        vitdsl.validate("twins_svt", overrides={"reductions": [5, 7, 7, 7]})
    assert e.value.path == "stages.0.blocks.0.global_attn"
    assert e.value.message == ("kv_reduction 5 does not divide the feature map 56×56 (height 56) "
                               "(input here: image 64×56×56)")
    assert e.value.hint.startswith("kv reductions that fit 56×56: 1, 2, 4, 7, 8, 14, 28, 56")


def test_a_window_too_large_for_a_stage_names_the_sizes_that_fit():
    with pytest.raises(ShapeError) as e:
        vitdsl.validate("scalable_vit", overrides={"image_size": 224})
    assert e.value.path == "stages.0.blocks.0.iwsa"
    assert e.value.message == ("window 64 does not divide the feature map 56×56 (height 56) "
                               "(input here: image 64×56×56)")
    assert e.value.hint.startswith("windows that fit 56×56: 1, 2, 4, 7, 8, 14, 28, 56; square input sizes that work")


@pytest.mark.parametrize("fields,message", [
    ("{heads: 2, value_conv: 4}", "value_conv must be odd so that padding keeps the map, got 4"),
    ("{heads: 2, value_conv: 3, kv_reduction: 2}", "value_conv adds a convolution of the values at every "
     "position, but kv_reduction 2 sub-samples them: use one of the two"),
])
def test_option_combinations_that_do_not_fit(fields, message):
    with pytest.raises(VitdslError) as e:
        vitdsl.validate(one_block(f"  - reduced-attn: {fields}"))
    assert message in e.value.message


@pytest.mark.parametrize("block", ["global-attn", "memory-attn", "sampling-attn"])  # channel-attn takes maps (DaViT)
def test_token_attention_on_a_map(block):
    with pytest.raises(ShapeError) as e:
        vitdsl.validate(one_block(f"  - {block}: {{heads: 2, samples: 2}}" if block == "sampling-attn"
                                  else f"  - {block}: {{heads: 2}}"))
    takes = "tokens or packed" if block == "global-attn" else "tokens"
    assert e.value.message == f"'{block}' takes {takes}, but the input gives image 16×8×8"
    assert e.value.hint == "cut the map into tokens first, e.g. '- patchify: {patch: 1, dim: ...}'"


def test_reduced_attention_on_tokens_needs_their_grid_and_no_special_tokens():
    with pytest.raises(ShapeError) as e:
        ReducedAttn(heads=2, kv_reduction=2).infer(Shape.tokens(16, 16))
    assert e.value.message == "reduced-attn needs the tokens' 2-D patch grid, but these carry none"
    with pytest.raises(ShapeError) as e:
        ReducedAttn(heads=2, value_conv=3).infer(Shape.tokens(17, 16, grid=(4, 4), prefix=1))
    assert e.value.message == "reduced-attn works on the patch grid, but 1 special token(s) are in the sequence"
    assert e.value.hint == "add the tokens block after this block"
    assert GlobalAttn(heads=2).infer(Shape.tokens(17, 16, grid=(4, 4), prefix=1)).dims == (17, 16)  # unchanged


# -- options -------------------------------------------------------------------------------------
@pytest.mark.parametrize("spec,x", [
    (ReducedAttn(heads=2, dim_head=6, dim_value=4, kv_reduction=2, qkv_bias=True), Shape.image(16, 8, 12)),
    (ReducedAttn(heads=2, dim_value=4, value_conv=3), Shape.image(16, 6, 6)),
    (ReducedAttn(heads=2, dim_value=4, kv_reduction=2), Shape.tokens(24, 16, grid=(4, 6))),
    (MemoryAttn(heads=2, memories=2, task_tokens=1), Shape.tokens(5, 16, prefix=1)),
    (LocalAttn(heads=2, window=2, partition="grid", value_conv=3, dim_value=4), Shape.image(16, 4, 6)),
    (LocalAttn(heads=2, window=None, value_conv=5), Shape.image(16, 5, 3)),
])
def test_rules_agree_with_modules(spec, x):
    rules_agree(spec, x)


def test_tokens_on_a_grid_attend_as_their_map():
    spec = ReducedAttn(heads=2, dim_head=6, dim_value=4, kv_reduction=2, value_conv=None)
    on_map, on_tokens = spec.build(Shape.image(16, 4, 6)).eval(), spec.build(Shape.tokens(24, 16, grid=(4, 6))).eval()
    on_tokens.load_state_dict(on_map.state_dict())
    x = torch.randn(2, 16, 4, 6)
    tokens = x.flatten(2).transpose(1, 2)
    assert torch.allclose(on_tokens(tokens), on_map(x).flatten(2).transpose(1, 2), atol=1e-6)


def test_kv_reduction_is_twins_global_attention():
    ours = ReducedAttn(heads=2, dim_head=8, kv_reduction=3, qkv_bias=False).build(Shape.image(16, 6, 9)).eval()
    ref = twins_svt.GlobalAttention(16, heads=2, dim_head=8, k=3).eval()
    sd = {"norm.weight": ref.norm.g.flatten(), "norm.bias": ref.norm.b.flatten(),
          "q.weight": ref.to_q.weight[..., 0, 0], "kv.weight": ref.to_kv.weight,  # the kv conv stays a conv
          "out.weight": ref.to_out[0].weight[..., 0, 0], "out.bias": ref.to_out[0].bias}
    ours.load_state_dict(sd)
    x = torch.randn(2, 16, 6, 9)
    with torch.no_grad():
        assert torch.allclose(ours(x), x + ref(x), atol=1e-5)


def test_value_conv_sees_across_windows_as_scalablevit_iwsa():
    """README windows cover whole maps; here 2×2 windows of a 4×6 map, with keys wider than values. vit-pytorch's
    channel norm has eps 1e-5 (the paper default, 1e-6, differs by up to 3e-5 here on some draws)."""
    torch.manual_seed(0)
    ours = LocalAttn(heads=2, window=2, dim_head=6, dim_value=4, rel_pos_bias="none", value_conv=3, qkv_bias=False,
                     norm_eps=1e-5)
    ours = ours.build(Shape.image(16, 4, 6)).eval()
    ref = scalable_vit.InteractiveWindowedSelfAttention(16, window_size=2, heads=2, dim_key=6, dim_value=4).eval()
    flat = lambda conv: conv.weight[..., 0, 0]  # noqa: E731
    sd = {"norm.weight": ref.norm.g.flatten(), "norm.bias": ref.norm.b.flatten(),
          "qkv.weight": torch.cat([flat(ref.to_q), flat(ref.to_k), flat(ref.to_v)]),
          "value_conv.weight": ref.local_interactive_module.weight,
          "value_conv.bias": ref.local_interactive_module.bias,
          "out.weight": flat(ref.to_out[0]), "out.bias": ref.to_out[0].bias}
    ours.load_state_dict(sd)
    x = torch.randn(2, 16, 4, 6)
    with torch.no_grad():
        assert torch.allclose(ours(x), x + ref(x), atol=1e-5)


def test_patchify_to_a_map_is_its_tokens_on_their_grid():
    x = Shape.image(3, 8, 12)
    spec = Patchify(patch=2, dim=5, order="chw", pre_norm="layer", post_norm="layer", layout="map")
    assert spec.infer(x) == Shape.image(5, 4, 6)
    assert (spec.count_params(x), spec.flops(x)) == (Patchify(patch=2, dim=5, order="chw", pre_norm="layer",
                                                              post_norm="layer").count_params(x), 2 * 24 * 12 * 5)
    to_map = spec.build(x)
    to_tokens = Patchify(patch=2, dim=5, order="chw", pre_norm="layer", post_norm="layer").build(x)
    to_tokens.load_state_dict(to_map.state_dict())
    img = torch.randn(2, 3, 8, 12)
    assert torch.equal(to_map(img).flatten(2).transpose(1, 2), to_tokens(img))


def test_patterns_say_what_each_attention_does():
    twins = {r.path: r.pattern for r in vitdsl.summary("twins_svt").rows}
    assert twins["stages.0.blocks.0.local_attn"] == "window 7×7"
    assert twins["stages.0.blocks.0.global_attn"] == "global, kv sub-sampled 7×7 (8×8 keys)"
    assert twins["stages.3.blocks.0.global_attn"] == "global, kv sub-sampled 7×7 (1×1 keys)"
    scalable = {r.path: r.pattern for r in vitdsl.summary("scalable_vit").rows}
    assert scalable["stages.0.blocks.0.ssa"] == "global, kv sub-sampled 8×8 (8×8 keys)"
    assert scalable["stages.3.blocks.0.ssa"] == "global"
    assert scalable["stages.0.blocks.0.iwsa"] == "window 64×64 + value conv 3×3"
    assert scalable["stages.2.blocks.0.iwsa"] == "window 16×16 (whole map) + value conv 3×3"
    small = {r.path: r.pattern for r in vitdsl.summary("scalable_vit", "small").rows}
    assert small["stages.0.blocks.0.iwsa"] == "window 7×7 + value conv 3×3"


def test_whole_map_windows_take_any_map():
    graph = vitdsl.validate("scalable_vit", overrides={"image_size": 192, "windows": [None] * 4})
    patterns = {node.spec.pattern(*inputs) for node, inputs, _ in graph if node.path.endswith("iwsa")}
    assert patterns == {"window 48×48 (whole map) + value conv 3×3", "window 24×24 (whole map) + value conv 3×3",
                        "window 12×12 (whole map) + value conv 3×3", "window 6×6 (whole map) + value conv 3×3"}


# -- the references' sub-block order -------------------------------------------------------------
def run_order(model, kinds, x):
    """The kinds of the modules in `kinds` (type or path → kind), in the order the forward runs them."""
    seen, hooks = [], []
    for name, m in model.named_modules():
        kind = kinds.get(type(m)) or kinds.get(name.split(".")[-1])
        if kind:
            hooks.append(m.register_forward_hook(lambda *_, k=kind: seen.append(k)))
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    return seen


def test_scalablevit_runs_ssa_ff_peg_ff_iwsa():
    ref = scalable_vit.ScalableViT(num_classes=10, dim=8, heads=(1, 2), depth=(2, 1), reduction_factor=(2, 1),
                                   ssa_dim_key=8, ssa_dim_value=8, iwsa_dim_key=8, iwsa_dim_value=8)
    ours = vitdsl.build("scalable_vit", overrides={"image_size": 32, "dim": 8, "heads": [1, 2], "depths": [2, 1],
                                                  "ssa_dim_key": [8, 8], "ssa_dim_value": 8, "reductions": [2, 1],
                                                  "windows": [None, None], "iwsa_dim_key": 8, "iwsa_dim_value": 8,
                                                  "classes": 10})
    import_weights(ours, ref)
    mods = scalable_vit
    order = run_order(ref, {mods.ScalableSelfAttention: "ssa", mods.FeedForward: "ff", mods.PEG: "peg",
                            mods.InteractiveWindowedSelfAttention: "iwsa"}, torch.randn(1, 3, 32, 32))
    block = ["ssa", "ff", "peg", "ff", "iwsa", "ssa", "ff", "ff", "iwsa"]  # stage 0: the PEG in block 0 only
    assert order == block + block[:1] + block[1:5]
    ours_order = run_order(ours, {"ssa": "ssa", "ff1": "ff", "ff2": "ff", "peg": "peg", "iwsa": "iwsa"},
                           torch.randn(1, 3, 32, 32))
    assert ours_order == order


def test_twins_runs_the_peg_after_the_first_block_of_each_stage():
    ref = twins_svt.TwinsSVT(num_classes=10, s1_emb_dim=8, s1_patch_size=2, s1_local_patch_size=2, s1_global_k=2,
                             s1_depth=1, s2_emb_dim=8, s2_patch_size=2, s2_local_patch_size=2, s2_global_k=2,
                             s2_depth=0, s3_emb_dim=8, s3_patch_size=1, s3_local_patch_size=2, s3_global_k=2,
                             s3_depth=1, s4_emb_dim=16, s4_patch_size=2, s4_local_patch_size=2, s4_global_k=1,
                             s4_depth=1)
    order = run_order(ref, {twins_svt.LocalAttention: "local", twins_svt.GlobalAttention: "global",
                            twins_svt.PEG: "peg"}, torch.randn(1, 3, 16, 16))
    assert order == ["local", "global", "peg", "local", "global"] + ["local", "global", "peg"] + \
        ["local", "global", "peg", "local", "global"] + ["global", "peg", "global"]
    ours = vitdsl.build("twins_svt", overrides={"image_size": 16, "dims": [8, 8, 8, 16], "patches": [2, 2, 1, 2],
                                                "windows": [2, 2, 2, 2], "reductions": [2, 2, 2, 1],
                                                "depths": [1, 0, 1, 1], "heads": 2, "dim_head": 4, "classes": 10})
    assert run_order(ours, {"local_attn": "local", "global_attn": "global", "peg": "peg"},
                     torch.randn(1, 3, 16, 16)) == order
