"""Hostile values in block fields and combinations that validated but built a wrong or broken model:
each is refused with a located message, or now gives the right numbers."""
import pytest
import torch

import vitdsl
from vitdsl import VitdslError
from vitdsl.blocks.mlp import MLP
from vitdsl.blocks.modules.token_merge import TokenMerge
from vitdsl.blocks.modules.token_sampling import Padding
from vitdsl.blocks.shape import Shape

BASE = """\
name: t
input: {image: [3, 16, 16]}
layers:
  - patchify: {patch: 4, dim: 16}
  - global-attn: {heads: 2, dim_head: 8}
  - mlp: {mult: 2}
  - pool: mean
  - head: {classes: 10}
"""


def refusal(text: str) -> str:
    """The message validate gives; build must give the very same."""
    with pytest.raises(VitdslError) as v:
        vitdsl.validate(vitdsl.loads(text, "bp.yaml"))
    with pytest.raises(VitdslError) as b:
        vitdsl.build(vitdsl.loads(text, "bp.yaml"), device="meta")
    assert str(v.value) == str(b.value)
    return str(v.value)


@pytest.mark.parametrize("old,new,message", [
    ("classes: 10", "classes: true", "bp.yaml:8:21: head: field 'classes' of 'head': takes a whole number, "
                                     "not true or false (got True)"),
    ("classes: 10", "classes: '10'", "bp.yaml:8:21: head: field 'classes' of 'head': takes a whole number, "
                                     "not text (got '10')"),
    ("mult: 2", "mult: .inf", "bp.yaml:6:17: mlp: field 'mult' of 'mlp': takes a finite number, not inf (got inf)"),
    ("mult: 2", "mult: 2, layer_scale: .nan", "bp.yaml:6:33: mlp: field 'layer_scale' of 'mlp': takes a finite "
                                              "number, not nan (got nan)"),
    ("dim: 16", "dim: 9223372036854775808", "bp.yaml:4:31: patchify: field 'dim' of 'patchify': is too large: "
                                            "numbers must stay below 2**63 (got 9223372036854775808)"),
    ("patch: 4", "patch: [4, true]", "bp.yaml:4:23: patchify: field 'patch' of 'patchify': takes a whole number, "
                                     "not true or false (got [4, True])"),
    ("mult: 2", "mult: 2, residual: 1", "bp.yaml:6:30: mlp: field 'residual' of 'mlp': takes true or false (got 1)"),
])
def test_numbers_are_numbers(old, new, message):
    assert refusal(BASE.replace(old, new)) == message


def test_sizes_torch_cannot_hold_are_refused_before_building():
    assert refusal(BASE.replace("dim: 16", f"dim: {2**62}")) == (
        "bp.yaml:4:15: patchify: too large: its output would take 73,786,976,294,838,206,464 numbers per sample, "
        "2**48 or more (input here: image 3×16×16)\n  hint: use smaller sizes")


def test_mlp_layer_scale_on_a_map_scales_its_channels():
    # channels == height, so scaling the wrong axis ran without an error
    module = MLP(mult=2, layer_scale=0.5).build(Shape.image(4, 4, 6)).eval()
    with torch.no_grad():
        module.gamma.copy_(torch.tensor([1.0, 2.0, 3.0, 4.0]))
    x = torch.randn(2, 4, 4, 6)
    last = x.permute(0, 2, 3, 1)
    branch = module.fc2(module.act(module.fc1(module.norm(last))))
    want = (last + branch * torch.tensor([1.0, 2.0, 3.0, 4.0])).permute(0, 3, 1, 2)
    with torch.no_grad():
        assert torch.allclose(module(x), want, atol=1e-6)


def test_mlp_layer_scale_on_a_map_whose_channels_differ_from_its_height():
    text = BASE.replace("  - patchify: {patch: 4, dim: 16}\n  - global-attn: {heads: 2, dim_head: 8}\n",
                        "  - conv-stem: {channels: [8], kernel: 3}\n").replace("mult: 2", "mult: 2, layer_scale: 0.1")
    model = vitdsl.build(vitdsl.loads(text)).eval()
    with torch.no_grad():
        assert model(torch.randn(2, 3, 16, 16)).shape == (2, 10)


def test_token_merge_gives_padding_rows_no_weight():
    merge = TokenMerge(8, 3, "layer", 1.0).eval()
    x = torch.randn(1, 5, 8)
    mask = torch.tensor([[True, True, True, False, False]])
    with torch.no_grad():
        assert torch.allclose(merge(x, extras=Padding(mask, torch.arange(5)[None])), merge(x[:, :3]), atol=1e-6)


def test_factorized_positions_refuse_trailing_tokens():
    text = BASE.replace("  - global-attn", "  - tokens: {cls: 1, position: last}\n"
                                           "  - pos-embed: {kind: factorized}\n  - global-attn")
    assert refusal(text) == ("bp.yaml:6:16: pos_embed: factorized positions cover patch tokens only, but 1 special "
                             "token(s) trail the sequence (input here: tokens 17×16)\n"
                             "  hint: add the tokens block after pos-embed")


def test_two_inputs_to_a_one_input_block_are_refused_before_its_shape_rule():
    text = BASE.replace("  - mlp: {mult: 2}", "  - mlp: {mult: 2}\n    from: [global_attn, global_attn]")
    assert refusal(text) == ("bp.yaml:6:10: mlp: 'mlp' takes 1 input(s), got 2\n"
                             "  hint: give 'from:' one name")


def test_token_ids_feed_no_block():
    text = BASE.replace("  - global-attn: {heads: 2, dim_head: 8}\n",
                        "  - tokens: {cls: 1}\n  - sampling-attn: {heads: 2, dim_head: 8, samples: 4}\n"
                        "  - token-ids:\n").replace("  - mlp: {mult: 2}\n  - pool: mean\n", "")
    assert refusal(text) == ("bp.yaml:7:15: token_ids: 'head' reads the output of 'token-ids', which gives integers "
                             "for the network's output, not features\n"
                             "  hint: name it in 'output:', and feed 'head' from the layer before it")


@pytest.mark.parametrize("mode", ["mean", "seq"])
def test_pool_gives_padding_rows_no_weight(mode):
    from vitdsl.blocks.heads import Pool

    pool = Pool(mode=mode).build(Shape.tokens(5, 8)).eval()
    x = torch.randn(2, 5, 8)
    mask = torch.tensor([[True, True, True, False, False], [True] * 5])
    with torch.no_grad():
        got = pool(x, extras=Padding(mask, torch.arange(5).expand(2, 5)))
        assert torch.allclose(got[0], pool(x[:1, :3])[0], atol=1e-6)
        assert torch.allclose(got[1], pool(x[1:])[0], atol=1e-6)


@pytest.mark.parametrize("block,fields", [("global-attn", {}), ("memory-attn", {"memories": 2})])
def test_global_attn_after_token_sampling_attends_to_no_padding(block, fields):
    from vitdsl.blocks import lookup

    attn = lookup(block)(heads=2, dim_head=4, **fields).build(Shape.tokens(5, 8, prefix=1)).eval()
    x = torch.randn(1, 5, 8)
    padding = Padding(torch.tensor([[True, True, True, False, False]]), torch.arange(5)[None])
    with torch.no_grad():
        got = attn(x, extras=padding)
        assert got.shape == x.shape
        assert torch.allclose(got[:, :3], attn(x[:, :3]), atol=1e-6)


def test_blocks_that_would_take_padding_for_tokens_are_refused_after_token_sampling():
    text = BASE.replace("  - global-attn: {heads: 2, dim_head: 8}\n",
                        "  - tokens: {cls: 1}\n  - sampling-attn: {heads: 2, dim_head: 8, samples: 4}\n"
                        "  - tokens: {cls: 1}\n")
    assert refusal(text) == ("bp.yaml:7:13: tokens_1: 'tokens' would take the padding rows that token sampling in "
                             "'sampling_attn' leaves for tokens\n"
                             "  hint: after token sampling use mlp, norm, head, global-attn over tokens, memory-attn, "
                             "sampling-attn, pos-embed (learned, scalar, sincos1d), pool, token-merge or token-ids")


def test_token_sampling_then_merge_and_attention_builds():
    text = BASE.replace("  - global-attn: {heads: 2, dim_head: 8}\n",
                        "  - tokens: {cls: 1}\n  - sampling-attn: {heads: 2, dim_head: 8, samples: 4}\n"
                        "  - global-attn: {heads: 2, dim_head: 8}\n  - token-merge: 2\n")
    model = vitdsl.build(vitdsl.loads(text)).eval()
    with torch.no_grad():
        assert model(torch.randn(3, 3, 16, 16)).shape == (3, 10)


@pytest.mark.parametrize("value,message", [(float("inf"), "dino: student_temp: takes a finite number, not inf"),
                                           (True, "dino: student_temp: takes a number, not true or false")])
def test_objective_settings_are_numbers_too(value, message):
    with pytest.raises(VitdslError) as e:
        vitdsl.validate("objectives/dino", overrides={"student_temp": value})
    assert e.value.message == message
    assert str(e.value.location).endswith("dino.yaml:11:19")


@pytest.mark.parametrize("bits,colours", [(16, "48"), (2**62, "13,835,058,055,282,163,712")])
def test_mpp_colours_beyond_any_head_are_refused_before_they_are_computed(bits, colours):
    with pytest.raises(VitdslError) as e:  # 2**(2**62 · 3) was computed, and never finished
        vitdsl.validate("objectives/mpp", overrides={"output_channel_bits": bits})
    assert e.value.message == (f"mpp: 2^(output_channel_bits · channels) = 2^{colours} colours: the to_bits part "
                               "could not hold a logit for each")
    assert e.value.hint == "use fewer bits per channel (3 in the paper)"
    assert str(e.value.location).endswith("mpp.yaml:10:5")


def test_an_mlp_without_hidden_units_is_refused():
    assert refusal(BASE.replace("mult: 2", "mult: 0.01")) == (
        "bp.yaml:6:10: mlp: mult 0.01 of the width 16 gives a hidden width of 0 (input here: tokens 16×16)\n"
        "  hint: raise mult, or set hidden")


def test_an_input_no_tensor_can_hold_is_refused():
    assert refusal(BASE.replace("[3, 16, 16]", "[3, 16777216, 16777216]")) == (
        "bp.yaml:2:16: the input (image 3×16777216×16777216) holds 844,424,930,131,968 numbers per sample, 2**48 or "
        "more\n  hint: no tensor may hold that many numbers")


@pytest.mark.parametrize("block,fields", [
    ("mlp", {}), ("dwconv", {}), ("reduced-attn", {"heads": 2, "dim_head": 4}),
    ("local-attn", {"heads": 2, "dim_head": 4, "window": 2}), ("conv-attn", {"heads": 2, "dim_head": 4}),
    ("separable-attn", {"heads": 2, "dim_head": 4, "window": 2})])
def test_layer_scale_on_a_map_scales_one_channel_per_entry(block, fields):
    from vitdsl.blocks.base import lookup

    module = lookup(block)(layer_scale=0.5, **fields).build(Shape.image(8, 4, 6)).eval()
    x = torch.randn(2, 8, 4, 6)
    with torch.no_grad():
        module.gamma.zero_()
        module.gamma[3] = 1.0  # only channel 3's branch gets through
        changed = (module(x) - x).abs().sum(dim=(0, 2, 3))
    assert changed[3] > 0 and changed[torch.arange(8) != 3].eq(0).all()
