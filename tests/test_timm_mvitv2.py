"""MViTv2: the variants of ``mvitv2`` (and its ``cls``/``expand_attn`` knobs) are timm's ``mvitv2_*`` exactly
(``vitdsl.interop.timm``'s mvitv2 family): the same parameters, and the same outputs once timm's weights, all
re-drawn at random, are imported. The sweep (``-m sweep``) checks the outputs of every size; here tiny, and the
class token with large's wiring (the MLP widens, not the attention) at tiny's size."""
import copy
import re
from functools import partial

import pytest
import torch
from rules_check import assert_block_agrees
from timm_oracle import TOLERANCE, imported

import vitdsl
import vitdsl.interop.timm as vt
from vitdsl.blocks.attention.pooled import PoolAttn
from vitdsl.blocks.mlp import MLP
from vitdsl.blocks.shape import Shape
from vitdsl.blueprint import Blueprint
from vitdsl.errors import VitdslError
from vitdsl.interop.timm import mvitv2
from vitdsl.interop.transfer import rewrite

timm = pytest.importorskip("timm")


def test_the_family_covers_every_name_timm_registers():
    assert sorted(mvitv2.MODELS) == sorted(timm.list_models("mvitv2_*"))
    assert vt.variants()["mvitv2"] == {size: [f"mvitv2_{size}"] for size in ("base", "large", "small", "tiny")}


def _no_residual_pooling(model):
    model.block("stages.1.blocks.0.attn").residual_pool = False


def _rel_pos_rows_reversed(model):
    """The decomposed relative positions read at key - query instead of query - key."""
    attn = model.block("stages.2.blocks.1.attn")
    attn.rel_index_h = attn.rel_index_h.flip(0, 1)


def _no_q_norm(model):
    model.block("stages.0.blocks.0.attn").norm_q = None


def _unnormed_shortcut(model):
    """The widening block's residual projected from the input before its norm."""
    attn = model.block("stages.1.blocks.0.attn")
    attn.norm, first = torch.nn.Identity(), attn.norm
    attn.qkv = torch.nn.Sequential(first, attn.qkv)


def test_tiny_is_timms_exactly_and_a_wrong_wiring_shows():
    ref, model, x = imported("mvitv2_tiny")
    with torch.no_grad():
        want = ref(x)
        assert want.abs().max() > 1 and (model(x) - want).abs().max() < TOLERANCE
        for wrong in (_no_residual_pooling, _rel_pos_rows_reversed, _no_q_norm, _unnormed_shortcut):
            other = copy.deepcopy(model)
            wrong(other)
            assert (other(x) - want).abs().max() > 10 * TOLERANCE, wrong.__name__


def test_the_class_token_and_larges_wiring_are_timms_at_tiny_size():
    """mvitv2_large's wiring (expand_attn off: a stage's last MLP widens, its residual projected) with the _cls
    models' class token, at tiny's widths and depths, where it is cheap; the sweep checks the named models."""
    from timm.models.mvitv2 import MultiScaleVit, MultiScaleVitCfg

    torch.manual_seed(0)
    ref = MultiScaleVit(MultiScaleVitCfg(depths=(1, 2, 5, 2), expand_attn=False, use_cls_token=True)).eval()
    with torch.no_grad():
        for t in ref.state_dict().values():
            t.copy_(torch.randn_like(t) * 0.2)
    model = vitdsl.build("mvitv2", "tiny", overrides={"expand_attn": False, "cls": True}).eval()
    vt.import_weights(model, ref, name="mvitv2_tiny")
    x = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        want = ref(x)
        assert want.abs().max() > 1 and (model(x) - want).abs().max() < TOLERANCE
        model.block("stages.0.blocks.0.ff").shortcut.bias.zero_()
        assert (model(x) - want).abs().max() > 10 * TOLERANCE


@pytest.mark.parametrize("mode, residual_pooling, rel_pos", [("max", True, "spatial"), ("avg", False, "none")])
def test_the_pooling_modes_are_timms_block_by_block(mode, residual_pooling, rel_pos):
    """MViT v1's max and average pooling, without residual pooling or relative positions, with a class token
    and a widening, query-strided block: one timm MultiScaleBlock against our attention and MLP."""
    from timm.models.mvitv2 import MultiScaleBlock

    torch.manual_seed(0)
    ref = MultiScaleBlock(32, 64, 2, (8, 8), kernel_q=(3, 3), kernel_kv=(3, 3), stride_q=(2, 2), stride_kv=(4, 4),
                          mode=mode, has_cls_token=True, expand_attn=True, rel_pos_type=rel_pos,
                          residual_pooling=residual_pooling,
                          norm_layer=partial(torch.nn.LayerNorm, eps=1e-6)).eval()
    x = Shape.tokens(65, 32, grid=(8, 8), prefix=1)
    attn = PoolAttn(dim=64, heads=2, pool=mode, q_stride=2, kv_stride=4, residual_pool=residual_pooling,
                    rel_pos="decomposed" if rel_pos == "spatial" else "none")
    ours = torch.nn.ModuleDict({"attn": attn.build(x), "ff": MLP().build(attn.infer(x))}).eval()
    with torch.no_grad():
        for t in ref.state_dict().values():
            t.copy_(torch.randn_like(t) * 0.2)
        mine = dict(ours.state_dict())
        for key, t in ref.state_dict().items():
            mine[re.sub(r"^stages\.0\.blocks\.0\.", "", rewrite("stages.0.blocks.0." + key, mvitv2.RULES, {}))] = t
        ours.load_state_dict(mine)
        tokens = torch.randn(2, 65, 32)
        want, _ = ref(tokens, [8, 8])
        assert (ours["ff"](ours["attn"](tokens)) - want).abs().max() < TOLERANCE


def test_the_summary_names_the_pooling():
    patterns = {node.path: node.spec.pattern(*inputs) for node, inputs, _ in vitdsl.validate("mvitv2")}
    assert patterns["stages.0.blocks.0.attn"] == "pooled q ×1, kv ×4, rel-pos decomposed"
    assert patterns["stages.1.blocks.0.attn"] == "pooled q/kv ×2, rel-pos decomposed"
    assert patterns["stages.1.blocks.1.attn"] == "pooled q ×1, kv ×2, rel-pos decomposed"
    assert patterns["stages.3.blocks.1.attn"] == "pooled q/kv ×1, rel-pos decomposed"
    x = Shape.tokens(64, 32, grid=(8, 8))
    assert PoolAttn(heads=2, pool="max", q_stride=2, kv_stride=4, rel_pos="none").pattern(x) == \
        "max-pooled q ×2, kv ×4"
    assert PoolAttn(heads=2, pool_kernel=1, kv_stride=2).pattern(x) == "pooled kv ×2, rel-pos decomposed"
    assert PoolAttn(heads=2, pool_kernel=1, rel_pos="none").pattern(x) == "global"


def _errors(attn: dict, size: int = 36) -> str:
    bp = Blueprint(name="t", input={"image": [3, size, size]},
                   layers=[{"patchify": {"patch": 4, "dim": 16}}, {"pool-attn": {"heads": 2, **attn}}])
    with pytest.raises(VitdslError) as e:
        vitdsl.validate(bp)
    return str(e.value)


def test_the_options_refuse_what_they_cannot_do():
    assert _errors({"q_stride": 4}).startswith("pool_attn: q_stride 4 does not divide the feature map 9×9 (height 9)")
    assert _errors({"kv_stride": 2}).startswith("pool_attn: kv_stride 2 does not divide the feature map 9×9 (height 9)")
    assert _errors({"q_stride": 3}).splitlines() == [
        "pool_attn: q_stride 3: the residual's max pool (kernel 4, padding 2) would give a map of 4×4, the queries' "
        "is 3×3 (input here: tokens 81×16)", "  hint: use an even q_stride, or residual: false"]
    assert vitdsl.validate(Blueprint(name="t", input={"image": [3, 36, 36]}, layers=[
        {"patchify": {"patch": 4, "dim": 16}}, {"pool-attn": {"heads": 2, "q_stride": 3, "residual": False}}
    ])).output == Shape.tokens(9, 16, grid=(3, 3))
    assert "pool_kernel must be odd, so that padding kernel // 2 keeps a stride-1 map (got 2)" in \
        _errors({"pool_kernel": 2})
    assert "norm: post has no place here: the residual is pooled and projected from the input, so the block " \
        "normalises its input (norm: pre) or nothing (norm: none)" in _errors({"norm": "post"})
    with pytest.raises(VitdslError, match=re.escape("pool-attn pools on the tokens' 2-D patch grid, but these "
                                                    "carry none")):
        vitdsl.validate(Blueprint(name="t", input={"tokens": [10, 16]}, layers=[{"pool-attn": {"heads": 2}}]))
    with pytest.raises(VitdslError, match=re.escape("mlp dim 16 changes the width (8) with a projected residual, "
                                                    "which takes tokens, all of them, and norm pre or none")):
        vitdsl.validate(Blueprint(name="t", input={"image": [3, 32, 32]}, layers=[
            {"conv-stem": {"channels": [8], "kernel": 3, "stride": 1}}, {"mlp": {"dim": 16}}]))


@pytest.mark.parametrize("spec, x", [
    (PoolAttn(heads=2, dim=64, pool="max", q_stride=2, kv_stride=4, layer_scale=0.1), Shape.tokens(128, 32, (16, 8))),
    (PoolAttn(heads=2, pool="avg", pool_kernel=5, kv_stride=2, residual=False), Shape.tokens(66, 32, (8, 8), 2)),
    (PoolAttn(heads=2, pool_kernel=1, rel_pos="none", residual_pool=False, norm="none"),
     Shape.tokens(65, 32, (8, 8), 1)),
    (PoolAttn(heads=4, dim=48, q_stride=4, kv_stride=2, qkv_bias=False, out_bias=False, project_out="auto"),
     Shape.tokens(65, 32, (8, 8), 1)),
    (MLP(dim=64, layer_scale=0.1), Shape.tokens(10, 32)),
    (MLP(dim=16, residual=False, gate="swiglu"), Shape.tokens(10, 32)),
])
def test_rules_agree_for_options_no_variant_reaches(spec, x):
    assert_block_agrees(spec, x, module=spec.build(x), batch=2)
