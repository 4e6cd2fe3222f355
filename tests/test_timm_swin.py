"""Swin Transformer v1: the blueprint's variants are timm's ``swin_*_patch4_window7_224`` models exactly (and the
``window12_384`` ones at image 384 with window 12): the same parameters, and tiny's outputs once timm's weights,
all re-drawn at random, are imported. The rest of the family runs in the sweep (``make timm-sweep``)."""
import copy

import pytest
import torch
from rules_check import assert_graph_agrees
from timm_oracle import TOLERANCE, assert_exact, outputs

import vitdsl
import vitdsl.interop.timm as vt
from vitdsl.blocks.modules.attention.windows import LocalAttention, shift_mask
from vitdsl.blocks.modules.embed import Patchify
from vitdsl.errors import VitdslError
from vitdsl.interop.timm import swin

timm = pytest.importorskip("timm")


@pytest.fixture(scope="module")
def tiny():
    return outputs("swin_tiny_patch4_window7_224")


def test_tiny_is_timms_exactly(tiny):
    assert_exact(*tiny)


def _shift_off(model):
    for m in model.modules():
        if isinstance(m, LocalAttention):
            m.shift, m.shift_mask = (0, 0), None


def _mask_off(model):
    for m in model.modules():
        if isinstance(m, LocalAttention):
            m.shift_mask = None


def _merge_row_by_row(model):
    for m in model.modules():
        if isinstance(m, Patchify) and m.order == "whc":
            m.order = "hwc"


@pytest.mark.parametrize("wrong", [_shift_off, _mask_off, _merge_row_by_row])
def test_a_wrong_wiring_shows(tiny, wrong):
    """The check above sees the cyclic shift, its mask and the order in which patch merging joins neighbours."""
    model, x, want = tiny
    model = copy.deepcopy(model)
    wrong(model)
    with torch.no_grad():
        assert (model(x) - want).abs().max() > 10 * TOLERANCE


def test_the_family_covers_every_swin_v1_name_timm_registers():
    v1 = [n for n in timm.list_models("swin_*") if not n.startswith("swin_s3_")]
    assert sorted(swin.MODELS) == sorted(v1) and len(v1) == 6
    assert vt.target("swin_large_patch4_window12_384") == ("swin", "large", {"image_size": 384, "window": 12})
    assert vt.variants()["swin"] == {size: [f"swin_{size}_patch4_window7_224"]
                                     for size in ("base", "large", "small", "tiny")}


@pytest.mark.parametrize("image, window", [(224, 7), (384, 12)])
def test_no_shift_where_the_window_covers_the_map(image, window):
    """The last stage's map is one window (7×7 at 224, 12×12 at 384): its odd blocks do not shift, as in timm."""
    overrides = {"image_size": image, "window": window}
    model = vitdsl.build("swin", "tiny", overrides=overrides, device="meta")
    assert model.block("stages.2.blocks.1.attn").shift == (window // 2,) * 2
    assert model.block("stages.3.blocks.1.attn").shift == (0, 0)
    assert model.block("stages.3.blocks.1.attn").shift_mask is None
    patterns = {node.path: node.spec.pattern(*inputs)
                for node, inputs, _ in vitdsl.validate("swin", "tiny", overrides=overrides)}
    assert patterns["stages.2.blocks.1.attn"] == f"shifted window {window}×{window}"
    assert patterns["stages.3.blocks.1.attn"] == f"window {window}×{window}"


@pytest.mark.parametrize("size, shift", [((14, 21), (3, 3)), ((14, 7), (3, 0)), ((24, 24), (6, 6))])
def test_the_mask_is_timms(size, shift):
    """Who may attend to whom, window by window, as timm's mask allows (0 where allowed, -100 elsewhere), also
    on a map that is not square and one where only the rows shift."""
    from timm.models.swin_transformer import SwinTransformerBlock

    window = 12 if size == (24, 24) else 7
    block = SwinTransformerBlock(8, size, num_heads=1, window_size=window, shift_size=window // 2)
    assert block.shift_size == shift
    assert torch.equal(shift_mask(size, (window, window), shift), block.attn_mask == 0)


def test_the_options_agree_with_their_rules(write):
    path = write("name: t\ninput: {image: [3, 16, 8]}\nlayers:\n"
                 "  - patchify: {patch: 2, dim: 8, order: chw, post_norm: layer, layout: map}\n"
                 "  - local-attn: {window: 4, shift: 2, dim_head: 4}\n"
                 "  - patchify: {patch: 2, dim: 16, order: whc, pre_norm: layer, bias: false, layout: map}\n"
                 "  - local-attn: {window: 2, shift: 1, dim_head: 4}\n"
                 "  - pool: mean\n  - head: {classes: 3}\n")
    model = vitdsl.build(str(path)).eval()
    assert_graph_agrees(vitdsl.validate(str(path)), model, batch=2)
    # an 8×4 map in 4×4 windows, then a 4×2 map in 2×2 windows: the columns, one window wide, do not shift
    assert model.block("local_attn_0").shift == (2, 0)
    assert model.block("local_attn_1").shift == (1, 0)


def _refusal(write, layer: str, size: str = "8, 8, 8", kind: str = "image") -> str:
    with pytest.raises(VitdslError) as e:
        vitdsl.validate(str(write(f"name: t\ninput: {{{kind}: [{size}]}}\nlayers:\n  - {layer}\n")))
    return e.value.message


def test_what_shift_and_whc_refuse(write):
    """Swin's classification code (and so ours, by default) needs windows that tile the map; no registered model
    needs more (every stage's map is a multiple of its window). timm pads instead: local-attn's pad
    (tests/test_local_rope_padding.py), which takes block windows of a set size only."""
    assert _refusal(write, "local-attn: {window: 7, shift: 3, dim_head: 4}", "8, 10, 10").startswith(
        "window 7 does not divide the feature map 10×10 (height 10)")
    assert _refusal(write, "local-attn: {window: 4, shift: 4, dim_head: 4}").startswith(
        "shift 4 must be smaller than the 4×4 window")
    assert "pad fills the map up to a multiple of block windows: set partition: block and a window, or drop pad" in \
        _refusal(write, "local-attn: {windows: 3, pad: after-roll, dim_head: 4}")
    assert "shift moves block windows: set partition: block, or drop shift" in \
        _refusal(write, "local-attn: {window: 4, shift: 2, partition: grid, dim_head: 4}")
    assert "order: whc takes non-overlapping patches: drop stride, padding, shift and frame_patch" in \
        _refusal(write, "patchify: {patch: 2, stride: 1, dim: 4, order: whc}")
    assert _refusal(write, "patchify: {patch: 2, dim: 4, order: whc}", "3, 4, 8, 8", "volume").startswith(
        "order: whc cuts images and maps, not volume")
