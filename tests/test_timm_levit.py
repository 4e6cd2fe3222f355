"""LeViT: the levit blueprint's named variants are timm's levit_* models exactly (``vitdsl.interop.timm.levit``),
levit_conv_* (the same model in 1×1 convolutions) included: the same parameters, and the same outputs once timm's
weights, all re-drawn at random, are imported. The zoo default stays vit-pytorch's (tests/test_parity.py)."""
import pytest
import torch
from rules_check import assert_block_agrees
from timm_oracle import TOLERANCE, difference, imported, std_for

import vitdsl
import vitdsl.interop.timm as vt
from vitdsl.blocks.conv_attention import ConvAttn
from vitdsl.blocks.shape import Shape
from vitdsl.errors import VitdslError
from vitdsl.interop.timm import levit

timm = pytest.importorskip("timm")


def test_the_family_covers_every_name_timm_registers():
    assert sorted(levit.MODELS) == sorted(timm.list_models("levit_*"))
    assert len(levit.MODELS) == 20
    # a variant is both of timm's forms as it stands, the distillation head included where timm has one
    assert vt.variants()["levit"]["128s"] == ["levit_128s", "levit_conv_128s"]
    assert vt.target("levit_conv_512d") == ("levit", "512d", {})


@pytest.mark.parametrize("name", ["levit_128s", "levit_conv_128s"])
def test_the_smallest_model_is_timms_exactly(name):
    assert difference(name) < TOLERANCE


def test_a_wrong_wiring_shows():
    """The shrink's keys and values read as vit-pytorch orders them (all heads' keys, then all heads' values)."""
    ref, model, x = imported("levit_128s", std_for("levit_128s"))
    with torch.no_grad():
        assert (model(x) - ref(x)).abs().max() < TOLERANCE
        for s in range(2):
            model.block(f"stages.{s}.shrink.0.attn").per_head = False
        assert (model(x) - ref(x)).abs().max() > 10 * TOLERANCE


def test_a_transposed_bias_table_shows_in_its_block():
    """Weights drawn at one std leave the attention biases a small part of the logits (each table read as
    vit-pytorch's (positions, heads) one moves them by 1e-6 only): the first attention, compared alone, shows it."""
    ref, model, _ = imported("levit_128s", std_for("levit_128s"))
    theirs, ours = ref.stages[0].blocks[0].attn, model.block("blocks.0.attn")  # timm's: no residual, tokens
    x = torch.randn(1, 128, 14, 14, generator=torch.Generator().manual_seed(2))

    def gap():
        return ((ours(x) - x).flatten(2).transpose(1, 2) - theirs(x.flatten(2).transpose(1, 2))).abs().max()

    with torch.no_grad():
        assert gap() < TOLERANCE
        heads, positions = ours.pos_table.shape
        ours.pos_table.copy_(ours.pos_table.reshape(positions, heads).t().clone())
        assert gap() > 100 * TOLERANCE


def test_the_vit_pytorch_default_keeps_its_own_projections_and_table():
    model = vitdsl.build("levit", overrides={"image_size": 64, "dims": [16, 24, 32], "depths": [1, 1, 1],
                                             "heads": [2, 2, 2], "dim_key": 8, "dim_value": 16, "classes": 3})
    attn = model.block("blocks.0.attn")
    assert attn.qkv is None and not attn.per_head and attn.pos_table is None
    assert tuple(attn.pos_bias.weight.shape) == (16, 2)  # (positions, heads), times √dim_key
    assert {k for k in model.state_dict() if k.startswith("stem.")} == {f"stem.{i}.conv.{p}" for i in range(4)
                                                                        for p in ("weight", "bias")}
    paper = vitdsl.build("levit", "128s", device="meta")
    assert tuple(paper.block("blocks.0.attn").pos_table.shape) == (4, 196)  # (heads, positions), as it is


@pytest.mark.parametrize("fields", [dict(qkv_layout="per-head", kv_stride=2, pos_bias="attention-bias"),
                                    dict(qkv_layout="per-head", q_stride=2, dim=24, residual=False, norm="none")])
def test_per_head_rules_agree_with_the_module_on_a_rectangular_map(fields):
    spec, x = ConvAttn(heads=2, dim_head=8, dim_value=12, proj="pointwise-bn", **fields), Shape.image(16, 6, 10)
    module = spec.build(x).eval()
    assert_block_agrees(spec, x, module=module)


def test_per_head_refuses_separable_projections(write):
    with pytest.raises(VitdslError) as e:
        vitdsl.validate(str(write("name: t\ninput: {image: [16, 8, 8]}\nlayers:\n"
                                  "  - conv-attn: {heads: 2, qkv_layout: per-head}\n")))
    assert ("qkv_layout per-head orders the channels of pointwise projections; separable ones (CvT) have a "
            "depthwise convolution each: use proj pointwise or pointwise-bn") in str(e.value)
