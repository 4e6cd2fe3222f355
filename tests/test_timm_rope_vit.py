"""RoPE-ViT: the zoo's rope_vit blueprint is every ``*rope*`` model timm registers exactly (``vitdsl.interop.timm``'s
family rope_vit): Heo et al.'s RoPE-Axial and RoPE-Mixed ViTs (with and without absolute positions) and timm's SBB
ViTs with registers and global average pooling. Its primitives are options of existing blocks: ``rope: mixed`` and
``rope_first`` on global-attn, ``over: patches`` on pool, ``cls: 0`` with registers on tokens. The outputs of the
names not checked here are in the sweep (tests/test_timm_sweep.py)."""
import copy
import re

import pytest
import torch
import yaml
from rules_check import assert_graph_agrees
from timm_oracle import TOLERANCE, imported, std_for

import vitdsl
from vitdsl.errors import VitdslError
from vitdsl.graph import info
from vitdsl.interop.timm import rope_vit

timm = pytest.importorskip("timm")


def test_the_family_covers_every_rope_model_timm_registers():
    assert sorted(rope_vit.MODELS) == sorted(timm.list_models("*rope*"))
    assert rope_vit.MODELS["vit_small_patch16_rope_mixed_ape_224"] == (
        "rope_vit", "small", {"rope": "mixed", "rope_theta": 10, "ape": True})
    assert rope_vit.MODELS["vit_betwixt_patch16_rope_reg4_gap_256"] == ("rope_vit", "betwixt_reg4", {})


def _exact(name, **reduced):
    """timm's ``name`` redrawn, ours with its weights, an input and timm's output; asserts what
    ``timm_oracle.difference`` does (random weights reach the output; ours within the tolerance of it), once per
    model for the exactness and the wirings both."""
    ref, model, x = imported(name, std_for(name), **reduced)
    with torch.no_grad():
        want = ref(x)
        assert want.abs().max() > 1
        assert (model(x) - want).abs().max() < TOLERANCE
    return model, x, want


@pytest.fixture(scope="module")
def mixed():
    return _exact("vit_small_patch16_rope_mixed_224")


@pytest.fixture(scope="module")
def registers():
    """The smallest reg/gap model, 3 of its 12 blocks (the whole one is in the sweep), to keep the file fast."""
    return _exact("vit_medium_patch16_rope_reg1_gap_256", depth=3)


def test_rope_mixed_small_is_timms_exactly(mixed):
    pass  # _exact asserted it


def test_the_reg_gap_medium_three_blocks_deep_is_timms_exactly(registers):
    pass


def _registers_averaged_in(model):
    model.block("pool").prefix = 0


def _frequencies_of_block_0_everywhere(model):
    """One (2, heads, d/2) table for every block, as if timm's rope.freqs were one block's, not one per block."""
    first = model.block("blocks.0.attn").rope.freqs
    for i in range(1, 12):
        model.block(f"blocks.{i}.attn").rope.freqs.copy_(first)


def _rows_and_columns_swapped(model):
    for i in range(12):
        rope = model.block(f"blocks.{i}.attn").rope
        rope.first, rope.second = rope.second, rope.first


@pytest.mark.parametrize("model, wrong", [("registers", _registers_averaged_in),
                                          ("mixed", _frequencies_of_block_0_everywhere),
                                          ("mixed", _rows_and_columns_swapped)])
def test_a_wrong_wiring_shows(request, model, wrong):
    model, x, want = request.getfixturevalue(model)
    model = copy.deepcopy(model)
    with torch.no_grad():
        wrong(model)
        assert (model(x) - want).abs().max() > 10 * TOLERANCE


def test_the_mixed_rotation_is_timms_bit_for_bit():
    from timm.layers import RotaryEmbeddingMixed

    from vitdsl.blocks.modules.attention.rope import MixedRope

    theirs = RotaryEmbeddingMixed(384, depth=3, num_heads=6, temperature=10.0, feat_shape=[14, 14])
    for block in range(3):
        ours = MixedRope(64, 6, (14, 14), 1, 10.0, columns_first=True)
        with torch.no_grad():
            ours.freqs.copy_(theirs.freqs[:, block])
        q = torch.randn(1, 6, 197, 64)
        sin, cos = theirs.get_embed()[block].chunk(2, -1)
        turned = torch.stack([-q[..., 1:, 1::2], q[..., 1:, ::2]], -1).reshape(q[..., 1:, :].shape)
        assert torch.equal(ours(q), torch.cat([q[..., :1, :], q[..., 1:, :] * cos + turned * sin], dim=-2))


def test_mixed_draws_the_papers_magnitudes_turned_per_head():
    from vitdsl.blocks.modules.attention.rope import MixedRope

    torch.manual_seed(0)
    freqs = MixedRope(16, 3, (2, 2), 0, 10.0).freqs.detach()  # (2, heads, d/2): per head, |f| twice over
    magnitude = 1.0 / 10.0 ** (torch.arange(0, 16, 4) / 16)
    assert torch.allclose(freqs.norm(dim=0), torch.cat([magnitude, magnitude]).expand(3, 8))


def test_the_rules_agree_with_the_modules_for_mixed():
    graph = vitdsl.validate("rope_vit", "small", overrides={"rope": "mixed", "depth": 2, "ape": True})
    assert_graph_agrees(graph)
    assert info(graph)["params"] - info(vitdsl.validate("rope_vit", "small", overrides={"depth": 2, "ape": True}))[
        "params"] == 2 * 384  # 2 · heads · d/2 frequencies a block


def test_the_summary_names_the_rotation_the_pool_and_the_registers():
    def patterns(variant, **overrides):
        graph = vitdsl.validate("rope_vit", variant, overrides=overrides or None)
        return {node.path: node.spec.pattern(*inputs) for node, inputs, _ in graph}

    mixed, axial, betwixt = patterns("small", rope="mixed"), patterns("small"), patterns("betwixt_reg4")
    assert (mixed["blocks.0.attn"], mixed["pool"], mixed["tokens"]) == ("global, rope mixed", "cls", "+1 cls")
    assert axial["blocks.0.attn"] == "global, rope"
    assert (betwixt["blocks.0.attn"], betwixt["pool"], betwixt["tokens"]) == ("global, rope", "mean of patches",
                                                                              "+4 registers")
    assert patterns("medium_reg1")["tokens"] == "+1 register"


def test_mean_over_patches_leaves_the_leading_tokens_out():
    from vitdsl.blocks.heads import Pool
    from vitdsl.blocks.shape import Shape

    x = Shape.tokens(7, 4, grid=(2, 2), prefix=2, suffix=1)
    tokens = torch.randn(1, 7, 4)
    patches, every = Pool().build(x), Pool(over="all").build(x)
    assert torch.equal(patches(tokens), tokens[:, 2:6].mean(dim=1))
    assert torch.equal(every(tokens), tokens[:, :6].mean(dim=1))  # vit-pytorch's: the class token counted in


def _validate(layers, layout="tokens"):
    patchify = {"patchify": {"patch": 4, "dim": 32, "layout": layout}}
    return vitdsl.validate(vitdsl.loads(yaml.safe_dump({"name": "t", "input": {"image": [3, 16, 16]},
                                                        "layers": [patchify, *layers]})))


@pytest.mark.parametrize("layers, layout, message", [
    ([{"tokens": 1}, {"global-attn": {"heads": 2, "rope": "mixed", "rope_ref": 16}}], "tokens",
     "rope: mixed learns its frequencies over the grid's own rows and columns: rope_ref is for rope: axial"),
    ([{"tokens": {"cls": 0}}], "tokens", "a tokens block with cls: 0 adds no token: give it registers, or cls: 1"),
    ([{"tokens": 1}, {"pool": {"mode": "cls", "over": "patches"}}], "tokens",
     "over: patches is for mode mean, not cls"),
    ([{"pool": {"over": "patches"}}], "map", "'pool: {mode: mean, over: patches}' takes tokens, but a feature map "
                                             "reaches it"),
])
def test_the_options_are_refused_where_they_do_not_apply(layers, layout, message):
    with pytest.raises(VitdslError, match=re.escape(message)):
        _validate(layers, layout)


def test_registers_without_a_class_token_are_one_table_of_their_own():
    layers = [{"patchify": {"patch": 4, "dim": 32}}, {"tokens": {"cls": 0, "registers": 2}},
              {"global-attn": {"heads": 2, "rope": "mixed"}}, {"pool": {"over": "patches"}}]
    blueprint = vitdsl.loads(yaml.safe_dump({"name": "t", "input": {"image": [3, 16, 16]}, "layers": layers}))
    model = vitdsl.build(blueprint, seed=0).eval()
    assert {k: tuple(v.shape) for k, v in model.state_dict().items() if k.startswith("tokens")} == {
        "tokens.registers": (2, 32)}
    assert_graph_agrees(vitdsl.validate(blueprint), model, batch=2)
