"""EVA-02: the zoo's eva02 blueprint is timm's ``eva02_*`` image classifiers exactly (``vitdsl.interop.timm``'s
family eva02): the same parameters, and the same outputs once timm's weights, all re-drawn at random, are
imported. Its primitives are options of existing blocks: ``rope: axial`` and ``qkv_bias: qv`` on global-attn,
``gate: swiglu`` (and ``gate_norm``) on mlp. The larger names' outputs are in the sweep (tests/test_timm_sweep.py)."""
import copy
import re

import pytest
import torch
import yaml
from timm_oracle import TOLERANCE, difference, outputs
from torch.utils.flop_counter import FlopCounterMode

import vitdsl
from vitdsl.blocks.modules import onednn
from vitdsl.blocks.shape import Shape
from vitdsl.errors import VitdslError
from vitdsl.interop.timm import eva02

timm = pytest.importorskip("timm")


def test_the_family_covers_every_classifier_timm_registers():
    assert sorted(eva02.MODELS) == sorted(n for n in timm.list_models("eva02_*") if "_clip_" not in n)
    assert eva02.MODELS["eva02_tiny_patch14_224"] == ("eva02", "tiny", {"classes": 0})
    assert eva02.MODELS["eva02_large_patch14_448"] == ("eva02", "large", {"image_size": 448})


def test_eva02_tiny_is_timms_exactly():
    assert difference("eva02_tiny_patch14_224") < TOLERANCE


def test_the_summary_names_the_rotary_positions_and_the_gate():
    patterns = {node.path: node.spec.pattern(*inputs) for node, inputs, _ in vitdsl.validate("eva02", "base")}
    assert (patterns["blocks.0.attn"], patterns["blocks.0.ff"]) == ("global, rope", "swiglu, norm")


@pytest.fixture(scope="module")
def tiny():
    return outputs("eva02_tiny_patch14_224")


def _ropes(model):
    return [model.block(f"blocks.{i}.attn").rope for i in range(12)]


def _cls_counted_as_a_patch(model):
    """The table applied from the first token on: the class token turned as the first patch, each patch as the
    next (the last as itself). (Turning it as a position (0, 0) before the grid would change nothing: angle 0.)"""
    for rope in _ropes(model):
        rope.prefix = 0
        rope.sin, rope.cos = (torch.cat([t, t[-1:]]) for t in (rope.sin, rope.cos))


def _rows_and_columns_swapped(model):
    for rope in _ropes(model):
        n, d = rope.sin.shape
        rope.sin, rope.cos = (t.view(n, 2, d // 2).flip(1).reshape(n, d) for t in (rope.sin, rope.cos))


def _halves_paired_not_neighbours(model):
    """Channel i turned with channel i + d/2 (rotate-half, as Llama), not with its neighbour."""
    for rope in _ropes(model):
        sin, cos = rope.sin[:, ::2], rope.cos[:, ::2]

        def half(t, rope=rope, sin=torch.cat([sin, sin], -1), cos=torch.cat([cos, cos], -1)):
            head, x = t[..., :rope.prefix, :], t[..., rope.prefix:, :]
            a, b = x.chunk(2, -1)
            return torch.cat([head, x * cos + torch.cat([-b, a], -1) * sin], dim=-2)
        rope.forward = half


def _gate_and_value_swapped(model):
    for i in range(12):
        fc1 = model.block(f"blocks.{i}.ff").fc1
        for t in (fc1.weight, fc1.bias):
            t.copy_(torch.cat(t.chunk(2)[::-1]))


@pytest.mark.parametrize("wrong", [_cls_counted_as_a_patch, _rows_and_columns_swapped, _halves_paired_not_neighbours,
                                   _gate_and_value_swapped])
def test_a_wrong_wiring_shows(tiny, wrong):
    model, x, want = tiny
    model = copy.deepcopy(model)
    with torch.no_grad():
        wrong(model)
        assert (model(x) - want).abs().max() > 10 * TOLERANCE


@pytest.mark.parametrize("side", [16, 24])
def test_the_rotation_tables_are_timms_bit_for_bit(side):
    """At 336 (24×24 patches) the positions are rescaled to the 16×16 pre-training grid's range, as timm's."""
    from timm.layers import RotaryEmbeddingCat

    from vitdsl.blocks.modules.attention.rope import AxialRope

    ours = AxialRope(64, (side, side), 1, 16, 10000.0)
    theirs = RotaryEmbeddingCat(64, in_pixels=False, feat_shape=[side, side], ref_feat_shape=[16, 16]).get_embed()
    assert torch.equal(torch.cat([ours.sin, ours.cos], -1), theirs)
    own = AxialRope(64, (side, side), 1, None, 10000.0)
    assert torch.equal(own.sin, ours.sin) == (side == 16)


@pytest.mark.parametrize("gate_norm", [False, True])
def test_the_gated_mlps_rules_agree_with_its_module(gate_norm):
    from vitdsl.blocks.mlp import MLP

    spec, x = MLP(hidden=24, gate="swiglu", gate_norm=gate_norm), Shape.tokens(5, 16)
    module = spec.build(x).eval()
    assert [tuple(p.shape) for n, p in module.named_parameters() if n.startswith("fc1")] == [(48, 16), (48,)]
    assert sum(p.numel() for p in module.parameters()) == spec.count_params(x) == \
        2 * 16 + 48 * 17 + 16 * 25 + (48 if gate_norm else 0)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        module(torch.randn(1, 5, 16))
    assert counter.get_total_flops() == spec.flops(x) == 6 * 5 * 16 * 24


def test_the_gate_is_silu_of_the_first_half_times_the_second():
    from vitdsl.blocks.mlp import MLP

    module = MLP(hidden=3, gate="swiglu", norm="none", residual=False).build(Shape.tokens(2, 4)).eval()
    x = torch.randn(1, 2, 4)
    gate, value = module.fc1(x).chunk(2, -1)
    with onednn.plain_kernels():  # the modules' own products, to the bit
        assert torch.equal(module(x), module.fc2(torch.nn.functional.silu(gate) * value))


def _validate(layers):
    return vitdsl.validate(vitdsl.loads(yaml.safe_dump({"name": "t", "input": {"image": [3, 16, 16]},
                                                        "layers": layers})))


@pytest.mark.parametrize("blueprint, message", [
    ({"mlp": {"gate_norm": True}}, "gate_norm normalises the gated product, but the mlp has no gate"),
    ({"cross-attn": {"rope": "axial"}}, "rope is an option of global-attn and local-attn, not of cross-attn"),
    ({"cross-attn": {"qkv_bias": "qv"}}, "qkv_bias: qv (query and value biases, no key bias: BEiT, EVA-02) is "
                                         "an option of global-attn, not of cross-attn"),
])
def test_the_options_are_refused_where_they_do_not_apply(blueprint, message):
    layers = [{"patchify": {"patch": 4, "dim": 32}}, blueprint]
    with pytest.raises(VitdslError, match=re.escape(message)):
        _validate(layers)


def test_rope_needs_the_patch_grid_and_heads_a_multiple_of_4():
    def check(layers, dim=32):
        return _validate([{"patchify": {"patch": 4, "dim": dim}}, *layers])

    check([{"tokens": {"cls": 2}}, {"global-attn": {"heads": 2, "rope": "axial"}}])
    with pytest.raises(VitdslError, match="so dim_head must be a multiple of 4, got 6"):
        check([{"global-attn": {"heads": 2, "rope": "axial"}}], dim=12)
    with pytest.raises(VitdslError, match="rope needs the special tokens first and then the 4×4 patches, got 17 "
                                          "tokens with 0 leading and 1 trailing"):
        check([{"tokens": {"cls": 1, "position": "last"}}, {"global-attn": {"heads": 2, "rope": "axial"}}])
