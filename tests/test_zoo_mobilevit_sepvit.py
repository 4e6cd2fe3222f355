"""MobileViT and SepViT: mbconv's expand_from, the separable-attn block (rules, errors, behaviour),
the paper-size variants, and MobileViT's blocks against vit-pytorch's one by one."""
import pytest
import torch
from rules_check import assert_block_agrees

import vitdsl
from vitdsl.blocks.conv import MBConv
from vitdsl.blocks.modules.attention import explicit_attention
from vitdsl.blocks.separable_attention import SeparableAttn
from vitdsl.blocks.shape import Shape
from vitdsl.errors import ShapeError, VitdslError
from vitdsl.interop.vit_pytorch import import_weights

XXS = {"dims": [64, 80, 96], "channels": [16, 16, 24, 24, 48, 48, 64, 64, 80, 80, 320], "expansion": 2}


# -- errors --------------------------------------------------------------------------------------
def test_mobilevit_patch_that_does_not_tile_a_stage():
    with pytest.raises(ShapeError) as e:
        vitdsl.validate("mobilevit", overrides={"image_size": 200})
    assert e.value.path == "trunk.0.transformer.0.attn"
    assert e.value.message == ("2 windows per side do not tile the feature map 25×25 (height 25) "
                               "(input here: image 96×25×25)")
    assert e.value.hint.startswith("window counts that fit 25×25: 1, 5, 25; square input sizes that work")


def test_sepvit_window_that_does_not_fit_the_last_stage():
    with pytest.raises(ShapeError) as e:
        vitdsl.validate("sepvit", overrides={"window": 14})
    assert e.value.path == "stages.3.blocks.0.attn"
    assert e.value.message == "window 14 does not divide the feature map 7×7 (height 7) (input here: image 256×7×7)"
    assert e.value.hint.startswith("windows that fit 7×7: 1, 7; square input sizes that work (up to 1024): 445–448")



def test_separable_attn_has_no_token_attention_extras(write):
    """Head mixing, memories, a learned temperature... would have to apply to both steps: not offered."""
    path = write("name: t\ninput: {image: [16, 8, 8]}\nlayers:\n  - separable-attn: {window: 4, heads: 2, "
                 "head_mix: talking}\n")
    with pytest.raises(VitdslError) as e:
        vitdsl.validate(str(path))
    assert e.value.message == "unknown field 'head_mix' for block 'separable-attn'"


def test_separable_attn_window_and_window_count_exclude_each_other():
    with pytest.raises(ValueError, match="set window .* or windows .*, not both"):
        SeparableAttn(window=4, windows=2, heads=2)


# -- mbconv expand_from ---------------------------------------------------------------------------
def test_mbconv_expands_the_input_like_mobilenet_v2():
    from references.levit_cvt import random_norms
    from vit_pytorch.mobile_vit import MV2Block

    x = Shape.image(8, 6, 6)
    spec = MBConv(dim=12, stride=2, expansion=3, act="silu", se=0, bias=False, expand_from="input")
    assert spec.dims(x)[2] == 24  # hidden = 3 × 8 input channels (MaxViT's default: 3 × 12 output)
    assert MBConv(dim=12, expansion=3).dims(x)[2] == 36
    ours, ref = spec.build(x).eval(), random_norms(MV2Block(8, 12, stride=2, expansion=3)).eval()
    assert sum(p.numel() for p in ours.parameters()) == spec.count_params(x) == sum(p.numel() for p in ref.parameters())
    ours.load_state_dict(dict(zip(ours.state_dict(), ref.state_dict().values(), strict=True)))
    img = torch.randn(2, 8, 6, 6)
    with torch.no_grad():
        torch.testing.assert_close(ours(img), ref(img))


# -- separable-attn -------------------------------------------------------------------------------
CONFIGS = [
    ({"window": 3, "heads": 2, "dim_head": 8}, (16, 6, 9)),
    ({"windows": 3, "partition": "grid", "heads": 2, "dim_head": 8, "qkv_bias": True}, (16, 6, 9)),
    ({"window": 6, "heads": 1, "dim_head": 16, "project_out": "auto", "norm": "post", "layer_scale": 0.1}, (16, 6, 6)),
]


@pytest.mark.parametrize("fields,dims", CONFIGS, ids=range(len(CONFIGS)))
def test_separable_attn_rules_agree_with_the_module(fields, dims):
    spec, x = SeparableAttn(**fields), Shape.image(*dims)
    module = spec.build(x).eval()
    assert_block_agrees(spec, x, module=module)


def test_separable_attn_patterns():
    assert SeparableAttn(heads=2).pattern(Shape.image(16, 14, 14)) == "window 7×7 + window tokens, cross-window"
    assert SeparableAttn(heads=2).pattern(Shape.image(16, 7, 7)) == "window 7×7 + window token, one window"
    assert SeparableAttn(heads=2, windows=2, partition="grid").pattern(Shape.image(16, 8, 12)) == \
        "grid 4×6 + window tokens, cross-window"


def test_fused_and_explicit_attention_agree():
    module = SeparableAttn(window=2, heads=2, dim_head=8).build(Shape.image(16, 4, 6)).eval()
    x = torch.randn(2, 16, 4, 6)
    with torch.no_grad():
        fused = module(x)
        with explicit_attention():
            explicit = module(x)
    torch.testing.assert_close(fused, explicit, rtol=1e-5, atol=1e-5)


def test_windows_see_each_other_only_through_the_cross_window_step():
    """Changing the top-left window moves the bottom-right one through the pointwise step; with a
    single group (as local-attn) the windows stay independent."""
    torch.manual_seed(0)
    module = SeparableAttn(window=2, heads=2, dim_head=8).build(Shape.image(16, 4, 4)).eval()
    x = torch.randn(1, 16, 4, 4)
    y = x.clone()
    y[..., :2, :2] += torch.randn(1, 16, 2, 2)  # not a constant: the pre-norm would remove it
    with torch.no_grad():
        assert not torch.allclose(module(x)[..., 2:, 2:], module(y)[..., 2:, 2:])
        module.groups = 1  # what the one-window case runs: the depthwise step alone
        torch.testing.assert_close(module(x)[..., 2:, 2:], module(y)[..., 2:, 2:])


def test_sepvit_honours_window_and_dim_head():
    """vit-pytorch's SepViT ignores both arguments (always 7 and 32); the blueprint uses them."""
    rows = {r.path: r for r in vitdsl.summary("sepvit", overrides={"window": 14, "dim_head": 16,
                                                                   "image_size": 448}).rows}
    assert rows["stages.3.blocks.0.attn"].pattern == "window 14×14 + window token, one window"
    assert rows["stages.0.blocks.0.attn"].pattern == "window 14×14 + window tokens, cross-window"
    model = vitdsl.build("sepvit", overrides={"dim_head": 16, "image_size": 128, "window": 4,
                                              "depths": [1, 1, 1, 1]})
    assert model.block("stages.1.blocks.0.attn").qkv.weight.shape == (3 * 2 * 16, 64)
    with torch.no_grad():
        assert model.eval()(torch.randn(1, 3, 128, 128)).shape == (1, 1000)


# -- the blueprints -------------------------------------------------------------------------------
def test_paper_sizes():
    def params(name, variant):
        return vitdsl.summary(name, variant).total_params

    # MobileViT: timm's mobilevit_* (tests/test_timm_mobilevit.py); SepViT: vit-pytorch's counts at these sizes
    # (tests/references) and the paper's qkv biases, 3 × width per block
    assert [params("mobilevit", v) for v in ("xxs", "xs", "s")] == [1_272_024, 2_317_848, 5_578_632]
    assert [params("sepvit", v) for v in ("lite", "tiny", "small", "base")] == \
        [4_014_728 + 4_320, 34_404_936 + 12_960, 50_960_456 + 22_176, 90_196_008 + 29_568]


def test_mobilevit_blocks_match_vit_pytorch_one_by_one():
    """The logits barely move with the attention (small values after pooling), so compare the output of
    every MobileViT block: a wrong partition (windows instead of pixel offsets) is off by ~1e-2 here."""
    from references.levit_cvt import random_norms
    from vit_pytorch.mobile_vit import MobileViT

    torch.manual_seed(0)
    ref = random_norms(MobileViT(image_size=(64, 64), num_classes=10, **XXS)).eval()
    ours = vitdsl.build("mobilevit", overrides={"image_size": 64, "classes": 10, "dims": XXS["dims"],
                                                "widths": XXS["channels"], "expansion": 2}).eval()
    import_weights(ours, ref)
    seen = {}
    for i in range(3):
        ref.trunk[i][1].register_forward_hook(lambda m, a, o, i=i: seen.__setitem__(("ref", i), o))
        ours.block(f"trunk.{i}.fuse").register_forward_hook(lambda m, a, o, i=i: seen.__setitem__(("ours", i), o))
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), ref(x), rtol=0, atol=1e-5)
    for i in range(3):
        torch.testing.assert_close(seen["ours", i], seen["ref", i], rtol=0, atol=1e-5)
