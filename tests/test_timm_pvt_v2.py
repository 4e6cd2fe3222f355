"""PVT v2: the variants of ``pvt_v2`` are timm's ``pvt_v2_*`` exactly (``vitdsl.interop.timm``'s pvt_v2 family):
the same parameters, and the same outputs once timm's weights, all re-drawn at random, are imported. The
sweep (``-m sweep``) checks the outputs of every size."""
import copy

import pytest
import torch
from timm_oracle import TOLERANCE, imported

import vitdsl
import vitdsl.interop.timm as vt
from vitdsl.blueprint import Blueprint
from vitdsl.errors import VitdslError
from vitdsl.interop.timm import pvt_v2

timm = pytest.importorskip("timm")


def test_the_family_covers_every_name_timm_registers():
    assert sorted(pvt_v2.MODELS) == sorted(timm.list_models("pvt_v2_*"))
    assert vt.variants()["pvt_v2"] == {size: [f"pvt_v2_{size}"]
                                       for size in ("b0", "b1", "b2", "b2_li", "b3", "b4", "b5")}


def _no_dwconv(model):
    """The MLP without its depthwise convolution (PVT v1's)."""
    for path in model.paths:
        if path.endswith(".ff"):
            model.block(path).dwconv = None


def _no_kv_norm(model):
    """No LayerNorm after the spatial-reduction convolution."""
    for path in model.paths:
        if path.endswith(".attn") and hasattr(model.block(path), "sr_norm"):
            model.block(path).sr_norm = torch.nn.Identity()


def _no_stage_norm(model):
    """The last stage's closing LayerNorm left out (the head reads the blocks' output)."""
    model.block("stages.3.norm").norm = torch.nn.Identity()


def test_b0_is_timms_exactly_and_a_wrong_wiring_shows():
    ref, model, x = imported("pvt_v2_b0")
    with torch.no_grad():
        want = ref(x)
        assert want.abs().max() > 1 and (model(x) - want).abs().max() < TOLERANCE
        for wrong in (_no_dwconv, _no_kv_norm, _no_stage_norm):
            other = copy.deepcopy(model)
            wrong(other)
            assert (other(x) - want).abs().max() > 10 * TOLERANCE, wrong.__name__


def test_the_linear_variant_is_timms_exactly_at_b0_size():
    """b2_li's wiring (keys and values pooled to 7×7, a ReLU before the MLP's convolution) at b0's widths and
    depths, where it is cheap; the sweep checks b2_li itself."""
    torch.manual_seed(0)
    ref = timm.create_model("pvt_v2_b0", linear=True).eval()
    with torch.no_grad():
        for t in ref.state_dict().values():
            t.copy_(torch.randn_like(t) * 0.2)
    model = vitdsl.build("pvt_v2", "b0", overrides=dict(reductions=[1, 1, 1, 1], kv_pool=7, dwconv_relu=True)).eval()
    vt.import_weights(model, ref)
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        want = ref(x)
        assert want.abs().max() > 1 and (model(x) - want).abs().max() < TOLERANCE
        model.block("stages.0.blocks.0.ff").relu = None
        assert (model(x) - want).abs().max() > 10 * TOLERANCE


def test_a_stage_ends_in_its_norm_and_the_head_pools_without_another():
    paths = [node.path for node, _, _ in vitdsl.validate("pvt_v2")]
    assert [p for p in paths if p.startswith("stages.0.") and "blocks.1" not in p] == \
        ["stages.0.embed", "stages.0.blocks.0.attn", "stages.0.blocks.0.ff", "stages.0.norm"]
    assert paths[-3:] == ["stages.3.norm", "pool", "head"]


def test_the_options_refuse_what_they_cannot_do():
    with pytest.raises(VitdslError, match="'dwconv: 3' convolves the hidden feature map, but the input is tokens"):
        vitdsl.validate(Blueprint(name="t", input={"image": [3, 32, 32]},
                                  layers=[{"patchify": {"patch": 8, "dim": 16}}, {"mlp": {"dwconv": 3}}]))
    with pytest.raises(VitdslError, match="kv_pool 7 pools the keys and values, so it takes neither kv_reduction"):
        vitdsl.validate("pvt_v2", overrides={"kv_pool": 7})
