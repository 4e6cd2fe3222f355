"""LeViT and CvT: the conv-attn block's options, its errors, and small builds of both blueprints."""
import pytest
import torch
from rules_check import assert_block_agrees

import vitdsl
from vitdsl.blocks.conv_attention import ConvAttn
from vitdsl.blocks.modules.attention import explicit_attention
from vitdsl.blocks.modules.conv_attention import distance_index
from vitdsl.blocks.shape import Shape
from vitdsl.errors import ShapeError, VitdslError
from vitdsl.interop.vit_pytorch import import_weights

SMALL = {"levit": {"image_size": 64, "dims": [16, 24, 32], "depths": [1, 1, 1], "heads": [2, 2, 2], "dim_key": 8,
                   "dim_value": 16},
         "cvt": {"image_size": 32, "dims": [8, 16, 24], "heads": [1, 2, 2], "depths": [1, 1, 1], "dim_head": 8}}

ONE_BLOCK = """\
name: t
input: {image: [16, 8, 8]}
layers:
  - conv-attn: FIELDS
"""


def small(name):
    model = vitdsl.build(name, overrides=SMALL[name]).eval()
    return model, torch.randn(2, *model.input_shape)


def one_block(write, fields):
    return write(ONE_BLOCK.replace("FIELDS", fields))


# -- errors --------------------------------------------------------------------------------------
def test_q_stride_larger_than_the_map():
    with pytest.raises(ShapeError) as e:
        vitdsl.validate("levit", overrides={"image_size": 32})
    assert e.value.path == "stages.1.shrink.0.attn"
    assert e.value.message == ("q_stride 2 needs a feature map of at least 2×2, got 1×1 "
                               "(input here: image 384×1×1)")
    assert e.value.hint.startswith("use a larger input, or a smaller q_stride; square input sizes that work")


def test_kv_stride_larger_than_the_map():
    with pytest.raises(ShapeError) as e:
        vitdsl.validate("cvt", overrides={"image_size": 8})
    assert e.value.path == "stages.1.blocks.0.attn"
    assert e.value.message == ("kv_stride 2 needs a feature map of at least 2×2, got 1×1 "
                               "(input here: image 192×1×1)")


@pytest.mark.parametrize("fields,out", [("{dim: 32, heads: 2}", "32×8×8"), ("{q_stride: 2, heads: 2}", "16×4×4")])
def test_residual_needs_an_unchanged_map(write, fields, out):
    with pytest.raises(ShapeError) as e:
        vitdsl.validate(str(one_block(write, fields)))
    assert e.value.message.startswith(f"the residual needs the output map ({out}) to equal the input (16×8×8)")
    assert e.value.hint.startswith("set residual: false")


def test_even_projection_kernel(write):
    with pytest.raises(VitdslError) as e:
        vitdsl.validate(str(one_block(write, "{heads: 2, proj_kernel: 4}")))
    assert "proj_kernel must be odd, so that a stride-1 projection keeps the map size; got 4" in e.value.message


# -- options -------------------------------------------------------------------------------------
def test_patterns_name_the_strides():
    rows = {r.path: r.pattern for r in vitdsl.summary("levit").rows}
    assert rows["blocks.0.attn"] == "global"
    assert rows["stages.0.shrink.0.attn"] == "global, q stride 2"
    assert {r.pattern for r in vitdsl.summary("cvt").rows if r.block == "conv-attn"} == {"global, kv stride 2"}


def test_distance_index_is_levit_table_and_generalises_to_rectangles():
    from vit_pytorch.levit import Attention

    for fmap, down in [(7, False), (7, True), (4, True)]:
        ref = Attention(16, fmap_size=fmap, heads=2, downsample=down).pos_indices
        assert torch.equal(distance_index(fmap, fmap, 2 if down else 1, 1), ref)
    index = distance_index(3, 5, 1, 2)  # 15 queries, 2×3 keys at rows (0, 2) and columns (0, 2, 4)
    assert index.shape == (15, 6)
    assert index[0].tolist() == [0, 2, 4, 10, 12, 14]  # |Δrow|·5 + |Δcol|
    assert index.max() < 15


CONFIGS = [
    dict(heads=2, dim_head=8, proj="pointwise"),
    dict(heads=2, dim_head=8, dim_value=12, proj="pointwise-bn", q_stride=2, pos_bias="distance", out_act="gelu",
         out_norm="batch-zero", norm="none", residual=False, dim=24),
    dict(heads=3, dim_head=8, proj="separable", proj_kernel=5, kv_stride=2, pos_bias="distance", layer_scale=0.1,
         norm="post", norm_type="rms"),
    dict(heads=1, dim_head=8, dim_value=16, project_out="auto", norm_type="batch", qkv_bias=True),
]


@pytest.mark.parametrize("fields", CONFIGS, ids=range(len(CONFIGS)))
def test_rules_agree_with_the_module_on_a_rectangular_map(fields):
    spec, x = ConvAttn(**fields), Shape.image(16, 6, 10)
    module = spec.build(x).eval()
    assert_block_agrees(spec, x, module=module)


def test_project_out_auto_drops_the_projection_only_when_it_is_identity():
    x = Shape.image(16, 4, 4)
    assert ConvAttn(heads=1, dim_head=8, dim_value=16, project_out="auto").build(x).out is None
    assert ConvAttn(heads=1, dim_head=8, project_out="auto").build(x).out is not None


def test_fused_and_explicit_attention_agree():
    module = ConvAttn(heads=2, dim_head=8, dim_value=12, kv_stride=2).build(Shape.image(16, 6, 6)).eval()
    x = torch.randn(2, 16, 6, 6)
    with torch.no_grad():
        fused = module(x)
        with explicit_attention():
            explicit = module(x)
    assert (fused - explicit).abs().max() < 1e-5


def test_batch_zero_starts_as_the_identity():
    x = torch.randn(2, 16, 5, 5)
    with torch.no_grad():
        zero = ConvAttn(heads=2, proj="pointwise-bn", out_norm="batch-zero", norm="none").build(Shape.image(16, 5, 5))
        assert torch.equal(zero.eval()(x), x)
        plain = ConvAttn(heads=2, proj="pointwise-bn", out_norm="batch", norm="none").build(Shape.image(16, 5, 5))
        assert not torch.equal(plain.eval()(x), x)


# -- the blueprints ------------------------------------------------------------------------------
def test_levit_distill_returns_both_heads():
    model = vitdsl.build("levit_distill", overrides=SMALL["levit"]).eval()
    with torch.no_grad():
        logits, distill = model(torch.randn(2, 3, 64, 64))
    assert logits.shape == distill.shape == (2, 1000)
    assert not torch.equal(logits, distill)


def test_levit_and_cvt_variants_have_the_paper_sizes():
    def params(name, variant):
        return vitdsl.summary(name, variant).total_params

    # timm's levit_* (the paper's models, distillation head included): tests/test_timm_levit.py
    assert [params("levit", v) for v in ("128s", "128", "192", "256", "384")] == \
        [7_777_058, 9_213_936, 10_947_069, 18_893_876, 39_128_836]
    assert [params("cvt", v) for v in ("13", "21", "w24")] == [19_936_296, 31_523_880, 276_879_720]


def test_levit_runs_at_sizes_its_reference_cannot():
    """vit-pytorch sizes LeViT's tables from image_size // 16 and fails on the 13×13 map of a 200 input;
    the block sizes its table from the map that reaches it."""
    model = vitdsl.build("levit", overrides={**SMALL["levit"], "image_size": 200}).eval()
    assert model.block("blocks.0.attn").pos_bias.num_embeddings == 13 * 13
    with torch.no_grad():
        assert model(torch.randn(1, 3, 200, 200)).shape == (1, 1000)


@pytest.mark.parametrize("name", sorted(SMALL))
def test_torch_compile_has_no_graph_breaks_and_export_matches(name):
    model, x = small(name)
    explanation = torch._dynamo.explain(model)(x)
    assert explanation.graph_break_count == 0
    program = torch.export.export(model, (x,))
    with torch.no_grad():
        assert torch.allclose(program.module()(x), model(x), atol=1e-5)


def test_scalar_parts_must_agree():
    from vit_pytorch.levit import LeViT

    ref = LeViT(image_size=64, num_classes=10, dim=(16, 24, 32), depth=1, heads=2, mlp_mult=2, dim_key=8,
                dim_value=16)
    model = vitdsl.build("levit", overrides={**SMALL["levit"], "classes": 10})
    import_weights(model, ref)
    ref.backbone[0].layers[0][0].to_v[1].num_batches_tracked.fill_(5)
    with pytest.raises(VitdslError) as e:
        import_weights(model, ref)
    assert ("scalar parts ['backbone.0.layers.0.0.to_k.1.num_batches_tracked', "
            "'backbone.0.layers.0.0.to_v.1.num_batches_tracked'] of 'blocks.0.attn.kv.norm.num_batches_tracked' "
            "differ") in str(e.value)
