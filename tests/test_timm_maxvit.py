"""MaxViT: the blueprint's named variants are timm's ``maxvit_*_tf_*`` models (the paper's TensorFlow weights)
exactly: the same parameters at every image size, and tiny's outputs once timm's weights, all re-drawn at
random, are imported. The zoo default stays vit-pytorch's (tests/test_parity.py). The rest of the family
runs in the sweep (``make timm-sweep``)."""
import copy

import pytest
import torch
from rules_check import assert_graph_agrees
from timm_oracle import TOLERANCE, assert_exact, outputs

import vitdsl
import vitdsl.interop.timm as vt
from vitdsl.blocks.modules.attention.windows import LocalAttention
from vitdsl.blocks.modules.conv import ConvNormAct
from vitdsl.errors import VitdslError
from vitdsl.interop.timm import maxvit

timm = pytest.importorskip("timm")


@pytest.fixture(scope="module")
def tiny():
    return outputs("maxvit_tiny_tf_224")


def test_tiny_is_timms_exactly(tiny):
    assert_exact(*tiny)


def _mirrored_table(model):
    for m in model.modules():
        if isinstance(m, LocalAttention):  # read the heads-first table at query - key, as Swin's is
            m.rel_pos_index.copy_(m.rel_pos_bias.weight[0].numel() - 1 - m.rel_pos_index)


def _exact_gelu(model):
    for m in model.modules():
        if isinstance(m, torch.nn.GELU):
            m.approximate = "none"


def _symmetric_padding(model):
    for m in model.modules():
        if isinstance(m, ConvNormAct) and m.same is not None:
            m.conv.padding, m.same = (m.same[0] // 2,) * 2, None


@pytest.mark.parametrize("wrong", [_mirrored_table, _exact_gelu, _symmetric_padding])
def test_a_wrong_wiring_shows(tiny, wrong):
    """The check above sees each TensorFlow detail: the table read at key - query, GELU's tanh approximation,
    SAME padding (a stride-2 convolution of an even map pads only the bottom and right)."""
    model, x, want = tiny
    model = copy.deepcopy(model)
    wrong(model)
    with torch.no_grad():
        assert (model(x) - want).abs().max() > 10 * TOLERANCE


def test_the_family_covers_every_tf_name_timm_registers():
    assert sorted(maxvit.MODELS) == sorted(timm.list_models("maxvit_*tf*"))
    assert vt.target("maxvit_base_tf_384") == ("maxvit", "base", {"image_size": 384})
    assert vt.target("maxvit_xlarge_tf_224") == ("maxvit", "xlarge", {"classes": 21843})
    assert vt.variants()["maxvit"] == {size: [f"maxvit_{size}_tf_224"] for size in ("base", "large", "small", "tiny")}


def test_windows_and_tables_follow_the_image_size():
    for image, window in ((224, 7), (384, 12), (512, 16)):
        model = vt.build(f"maxvit_tiny_tf_{image}", device="meta")
        for name in ("block_attn", "grid_attn"):
            attn = model.block(f"stages.3.blocks.1.{name}")
            assert attn.window == (window, window)
            assert tuple(attn.rel_pos_bias.weight.shape) == (16, 2 * window - 1, 2 * window - 1)


def test_the_paper_options_agree_with_their_rules_on_odd_maps(write):
    """SAME padding and the pooled shortcut on odd sizes (15 → 8 → 4), where TensorFlow pads both sides."""
    path = write("name: t\ninput: {image: [3, 15, 15]}\nlayers:\n"
                 "  - conv-stem: {channels: [8], stride: 2, padding: same, norm: batch, norm_eps: 1.0e-3}\n"
                 "  - mbconv: {dim: 16, stride: 2, norm: pre, bias: false, project_bias: true, se_from: output,\n"
                 "             se_bias: true, shortcut: pool-conv, padding: same, act: gelu-tanh}\n"
                 "  - local-attn: {window: 2, dim_head: 8, table_layout: heads-first}\n"
                 "  - pool: mean\n  - head: {classes: 3, norm: layer, pre_logits: 12}\n")
    model = vitdsl.build(str(path)).eval()
    assert_graph_agrees(vitdsl.validate(str(path)), model, batch=2)
    assert model.block("mbconv").se.reduce.weight.shape == (4, 64)  # a quarter of the output width


def test_new_options_refuse_what_they_cannot_do(write):
    with pytest.raises(VitdslError) as e:
        vitdsl.validate(str(write("name: t\ninput: {image: [8, 8, 8]}\nlayers:\n"
                                  "  - local-attn: {window: 2, rel_pos_bias: none, table_layout: heads-first}\n")))
    assert "table_layout is an option of the table bias: set rel_pos_bias: table" in e.value.message
    with pytest.raises(VitdslError) as e:
        vitdsl.validate(str(write("name: t\ninput: {volume: [3, 4, 8, 8]}\nlayers:\n"
                                  "  - conv-stem: {channels: [8], stride: 2, padding: same}\n")))
    assert e.value.message == "padding: same is for 2-D convolutions, but a volume reaches 3-D ones (input here: " \
                              "volume 3×4×8×8)"


def test_224_weights_load_into_the_384_model_as_timm_resizes_them(tmp_path):
    """The transplant planner on MaxViT's heads-first tables: timm's 224 checkpoint into the 384 model, each
    (heads, 13, 13) table interpolated to (heads, 23, 23) as timm's own checkpoint filter does (BEiT's
    geometric offsets, vitdsl/interop/relpos.py), so ours and timm's 384 model loaded from the same file agree."""
    from timm.models.maxxvit import checkpoint_filter_fn
    from timm_oracle import redrawn, sample

    file = tmp_path / "maxvit_tiny_tf_224.pth"
    torch.save(redrawn("maxvit_tiny_tf_224").state_dict(), file)
    ours = vt.build("maxvit_tiny_tf_384").eval()
    plan = vt.load_pretrained(ours, file, plan=True, show=False)
    assert plan.summary() == "538 exact, 22 resampled"
    assert {s.note for s in plan.steps if s.action == "resampled"} == {
        "relative positions interpolated, 13×13 → 23×23"}
    ref = timm.create_model("maxvit_tiny_tf_384").eval()
    ref.load_state_dict(checkpoint_filter_fn(torch.load(file, weights_only=True), ref))
    x = sample(ref)
    with torch.no_grad():
        assert (ours(x) - ref(x)).abs().max() < TOLERANCE
