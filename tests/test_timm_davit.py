"""DaViT: the blueprint's variants are timm's ``davit_*`` models exactly (and ``florence2: true`` its ``davit_*_fl``,
Florence-2's vision towers): the same parameters, and tiny's outputs once timm's weights, all re-drawn at random, are
imported; Florence-2's options on a small model of their kind. The rest of the family runs in the sweep
(``make timm-sweep``)."""
import copy

import pytest
import torch
from rules_check import assert_graph_agrees
from timm_oracle import TOLERANCE, assert_exact, count, outputs

import vitdsl
import vitdsl.interop.timm as vt
from vitdsl.blocks.modules.attention.channels import CrossCovarianceAttention
from vitdsl.blocks.modules.attention.windows import LocalAttention
from vitdsl.errors import VitdslError
from vitdsl.interop.timm import davit

timm = pytest.importorskip("timm")


@pytest.fixture(scope="module")
def tiny():
    return outputs("davit_tiny")


def test_tiny_is_timms_exactly(tiny):
    assert_exact(*tiny)


def _channel_roles_of_v2(model):
    for m in model.modules():
        if isinstance(m, CrossCovarianceAttention):
            m.form = "channel-groups-v2"


def _grid_windows(model):
    for m in model.modules():
        if isinstance(m, LocalAttention):
            m.partition = "grid"


@pytest.mark.parametrize("wrong", [_channel_roles_of_v2, _grid_windows])
def test_a_wrong_wiring_shows(tiny, wrong):
    """The check above sees which projection the channel softmax weighs (DaViT's code: softmax(kᵀv) weighs the
    queries) and that windows are contiguous blocks of the map."""
    model, x, want = tiny
    model = copy.deepcopy(model)
    wrong(model)
    with torch.no_grad():
        assert (model(x) - want).abs().max() > 10 * TOLERANCE


def test_the_family_covers_every_davit_name_timm_registers():
    assert sorted(davit.MODELS) == sorted(timm.list_models("davit_*")) and len(davit.MODELS) == 8
    assert vt.target("davit_huge_fl") == ("davit", "huge", {"florence2": True})
    assert vt.variants()["davit"] == {size: [f"davit_{size}"]
                                      for size in ("base", "giant", "huge", "large", "small", "tiny")}


def test_the_florence2_options_are_timms():
    """davit_*_fl's 3×3 downsampling, 12×12 windows, v2 channel attention (softmax(qᵀk / √tokens) weighs the values)
    and headless output, on a narrow one-block-per-stage model of their kind (davit_base_fl at 768×768 takes a
    minute and a half here: the sweep runs it)."""
    torch.manual_seed(0)
    ref = timm.create_model("davit_base_fl", depths=(1, 1, 1, 1), embed_dims=(32, 64, 128, 256),
                            num_heads=(1, 2, 4, 8)).eval()
    with torch.no_grad():
        for t in ref.state_dict().values():
            t.copy_(torch.randn_like(t) * 0.2)
    model = vitdsl.build("davit", "tiny", {"florence2": True, "image_size": 384, "dims": [32, 64, 128, 256],
                                           "depths": [1, 1, 1, 1]}).eval()
    assert count(model) == count(ref)
    vt.import_weights(model, ref)
    x = torch.randn(1, 3, 384, 384)
    with torch.no_grad():
        want = ref(x)
        assert want.shape == (1, 256) and want.abs().max() > 1
        assert (model(x) - want).abs().max() < TOLERANCE
        _channel_roles_of_davit(model)
        assert (model(x) - want).abs().max() > 10 * TOLERANCE


def _channel_roles_of_davit(model):
    for m in model.modules():
        if isinstance(m, CrossCovarianceAttention):
            m.form = "channel-groups"


def test_the_summary_names_channel_groups():
    patterns = {node.path: node.spec.pattern(*inputs) for node, inputs, _ in vitdsl.validate("davit")}
    assert patterns["stages.0.blocks.0.channel_attn"] == "channel groups"
    assert patterns["stages.0.blocks.0.window_attn"] == "window 7×7"
    patterns = {node.path: node.spec.pattern(*inputs)
                for node, inputs, _ in vitdsl.validate("davit", "base", overrides={"florence2": True})}
    assert patterns["stages.3.blocks.0.channel_attn"] == "channel groups, 1/√tokens"
    assert patterns["stages.3.blocks.0.window_attn"] == "window 12×12"
    assert {node.spec.pattern(*inputs) for node, inputs, _ in vitdsl.validate("xcit", "nano12")
            if node.spec.block == "channel-attn"} == {"cross-covariance"}


def test_the_options_agree_with_their_rules(write):
    """channel-attn's forms on tokens and on maps, and the blueprint's Florence-2 options."""
    path = write("name: t\ninput: {image: [3, 16, 8]}\nlayers:\n"
                 "  - conv-stem: {channels: [8], kernel: 3, stride: 2, norm: layer}\n"
                 "  - channel-attn: {dim_head: 4, form: channel-groups}\n"
                 "  - channel-attn: {dim_head: 2, form: channel-groups-v2}\n"
                 "  - channel-attn: {heads: 2}\n"
                 "  - patchify: {patch: 1}\n"
                 "  - channel-attn: {dim_head: 4, form: channel-groups, qkv_bias: false}\n"
                 "  - channel-attn: {dim_head: 4, form: channel-groups-v2}\n"
                 "  - pool: mean\n  - head: {classes: 3}\n")
    model = vitdsl.build(str(path)).eval()
    assert_graph_agrees(vitdsl.validate(str(path)), model, batch=2)
    assert_graph_agrees(vitdsl.validate("davit", "tiny", overrides={"florence2": True, "image_size": 192,
                                                                    "window": 6, "dims": [16, 32, 64, 128],
                                                                    "dim_head": 8}))


def _refusal(write, layer: str) -> str:
    with pytest.raises(VitdslError) as e:
        vitdsl.validate(str(write(f"name: t\ninput: {{image: [12, 8, 8]}}\nlayers:\n  - {layer}\n")))
    return e.value.message


def test_what_channel_attn_refuses(write):
    assert "temperature scales cross-covariance logits; form channel-groups has none: drop temperature, or set " \
           "form: cross-covariance" in _refusal(write, "channel-attn: {form: channel-groups, temperature: exp}")
    assert _refusal(write, "channel-attn: {form: channel-groups, dim_head: 5}").startswith(
        "width 12 is not divisible by dim_head 5, so heads cannot be derived")


def test_the_overlay_leaves_channel_groups_alone(write):
    """vit-pytorch's exp temperature is XCiT's quirk: a channel-groups block under compat: vit-pytorch has none."""
    path = write("name: t\ncompat: vit-pytorch\ninput: {image: [12, 8, 8]}\nlayers:\n"
                 "  - channel-attn: {dim_head: 4, form: channel-groups}\n  - channel-attn: {dim_head: 4}\n")
    first, second = (node.spec for node, _, _ in vitdsl.validate(str(path)))
    assert (first.form, second.form, second.temperature) == ("channel-groups", "cross-covariance", "exp")
