"""NesT: the zoo's nest blueprint's named variants are timm's ``nest_*`` models exactly
(``vitdsl.interop.timm``'s family nest), the ``_jx`` ones with the JAX code's SAME max-pool between levels:
the same parameters, and the same outputs once timm's weights, all re-drawn at random, are imported. The
zoo default stays vit-pytorch's (tests/test_parity.py); the other names' outputs are in the sweep
(tests/test_timm_sweep.py)."""
import copy

import pytest
import torch
from rules_check import assert_graph_agrees
from timm_oracle import TOLERANCE, difference, outputs

import vitdsl
from vitdsl.errors import VitdslError
from vitdsl.graph import info
from vitdsl.interop.timm import nest

timm = pytest.importorskip("timm")


def test_the_family_covers_every_name_timm_registers():
    assert sorted(nest.MODELS) == sorted(timm.list_models("nest_*"))
    assert nest.MODELS["nest_small_jx"] == ("nest", "small", {"pool_padding": "same"})


def test_nest_tiny_is_timms_exactly():
    assert difference("nest_tiny") < TOLERANCE


@pytest.fixture(scope="module")
def tiny():
    return outputs("nest_tiny")


def _transpose_the_blocks(model):
    """Each level's table read with its blocks column by column: the blockify order got wrong."""
    for stage, side in ((0, 4), (1, 2)):
        pos = model.block(f"stages.{stage}.pos").pos
        pos.copy_(pos.view(side, side, *pos.shape[1:]).transpose(0, 1).reshape(pos.shape).clone())


def _join_heads_head_after_head(model):
    for stage, depth in enumerate((2, 2, 8)):
        for i in range(depth):
            model.block(f"stages.{stage}.blocks.{i}.attn").interleave = False


def _same_max_pool(model):
    from vitdsl.blocks.modules.conv import SamePool

    for stage in (0, 1):
        model.block(f"stages.{stage}.aggregate.0.conv_stem")[0].pool = SamePool(3, 2)


@pytest.mark.parametrize("wrong", [_transpose_the_blocks, _join_heads_head_after_head, _same_max_pool])
def test_a_wrong_wiring_shows(tiny, wrong):
    """The check above sees the blocks' order in the position tables (moves the logits by ~2e-3), how the
    heads join and which max-pool padding the aggregation uses (the _jx models')."""
    model, x, want = tiny
    model = copy.deepcopy(model)
    with torch.no_grad():
        wrong(model)
        assert (model(x) - want).abs().max() > 10 * TOLERANCE


@pytest.mark.parametrize("side", [4, 7, 56])
def test_the_same_max_pool_is_tensorflows(side):
    from timm.layers import create_pool2d

    from vitdsl.blocks.modules.conv import SamePool

    x = torch.randn(2, 3, side, side)
    assert torch.equal(SamePool(3, 2)(x), create_pool2d("max", 3, stride=2, padding="same")(x))


def test_a_per_window_table_is_timms_blocks():
    from timm.models.nest import deblockify

    bp = vitdsl.Blueprint.model_validate({"name": "t", "input": {"image": [5, 8, 8]}, "layers": [
        {"pos-embed": {"kind": "learned", "windows": 2, "per_window": True}}]})
    model = vitdsl.build(bp)
    pos = model.block("pos_embed").pos
    assert tuple(pos.shape) == (4, 16, 5) and info(vitdsl.validate(bp))["params"] == 4 * 16 * 5
    x = torch.randn(2, 5, 8, 8)
    with torch.no_grad():
        assert torch.equal(model(x), x + deblockify(pos[None], 4).permute(0, 3, 1, 2))


def test_the_jx_models_rules_agree_with_their_modules():
    """tests/test_rules.py checks every named variant; the _jx models take an override."""
    assert_graph_agrees(vitdsl.validate("nest", "tiny", overrides={"pool_padding": "same"}))


@pytest.mark.parametrize("layers,message", [
    ([{"conv-stem": {"channels": [4], "pool": 3, "pool_stride": 2, "pool_padding": "same"}}],
     "pool_padding: same is for images, but a volume reaches conv-stem (input here: volume 3×4×8×8)"),
    ([{"patchify": {"patch": 2, "dim": 4, "frame_patch": 2}},
      {"pos-embed": {"kind": "learned", "windows": 2, "per_window": True}}],
     "windows and per_window are for feature maps, but tokens reach pos-embed (input here: tokens 32×4)"),
])
def test_new_options_refuse_what_they_cannot_do(layers, message):
    bp = vitdsl.Blueprint.model_validate({"name": "t", "input": {"volume": [3, 4, 8, 8]}, "layers": layers})
    with pytest.raises(VitdslError) as e:
        vitdsl.validate(bp)
    assert e.value.message == message


def test_interleaved_heads_need_windows_cut_from_the_input():
    with pytest.raises(VitdslError, match="value_conv joins the heads head after head: drop head_merge"):
        vitdsl.Blueprint.model_validate({"name": "t", "input": {"image": [8, 8, 8]}, "layers": [
            {"local-attn": {"window": 4, "heads": 2, "value_conv": 3, "head_merge": "channels"}}]}).resolve()
