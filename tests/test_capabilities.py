"""Roles by capability: blocks registered by a user (``vitdsl.register_block``) that declare what they are
fill the objectives' roles as the built-in blocks do — and the same blocks without the declaration are
not picked. The test blocks (tests/user_blocks.py) copy the built-in ones' arithmetic, so the objectives'
losses match exactly."""
from __future__ import annotations

import pytest
import torch
from torch import nn
from user_blocks import TEST_BLOCKS

import vitdsl
from vitdsl import VitdslError
from vitdsl.blocks import REGISTRY, BlockSpec
from vitdsl.blocks.base import CAPABILITIES


@pytest.fixture(autouse=True)
def blocks():
    try:
        for cls in TEST_BLOCKS:
            vitdsl.register_block(cls)
        yield
    finally:
        for cls in TEST_BLOCKS:
            if REGISTRY.get(cls.block) is cls:
                del REGISTRY[cls.block]


# -- registration ---------------------------------------------------------------------------------
def test_the_vocabulary():
    assert sorted(CAPABILITIES) == ["attention", "classifier", "context", "patchify", "positions", "readout",
                                    "special-tokens"]
    declared = {name: sorted(cls.capabilities) for name, cls in REGISTRY.items()
                if cls.capabilities and not name.startswith("test-")}
    assert declared == {"patchify": ["patchify"], "pos-embed": ["positions"], "tokens": ["special-tokens"],
                        "pool": ["readout"], "attn-pool": ["attention", "readout"], "head": ["classifier", "readout"],
                        "global-attn": ["attention", "context"], "local-attn": ["attention"],
                        "cross-attn": ["attention"], "conv-attn": ["attention"], "separable-attn": ["attention"],
                        "token-merge": ["attention"], "channel-attn": ["attention"], "lsa-attn": ["attention"],
                        "memory-attn": ["attention"], "reduced-attn": ["attention"], "region-attn": ["attention"],
                        "sampling-attn": ["attention"], "pool-attn": ["attention"]}


def test_every_attention_block_declares_it():
    # MP3 holds every attention in its body to taking a context: an attention block that forgot to say so
    # would slip through its check
    undeclared = [name for name, cls in REGISTRY.items() if cls.family == "attention"
                  and "attention" not in cls.capabilities]
    assert undeclared == []


def test_an_unknown_capability_is_refused_at_registration():
    class Typo(BlockSpec):
        block = "test-typo"
        capabilities = frozenset({"position", "readout"})

    with pytest.raises(ValueError) as e:
        vitdsl.register_block(Typo)
    assert str(e.value) == ("block 'test-typo' declares unknown capabilities 'position'; did you mean 'positions'? "
                            "(capabilities: attention, classifier, context, patchify, positions, readout, "
                            "special-tokens)")
    assert "test-typo" not in REGISTRY


def test_capabilities_must_be_a_frozenset_of_words():
    class Listed(BlockSpec):
        block = "test-listed"
        capabilities = ["readout"]

    with pytest.raises(ValueError) as e:
        vitdsl.register_block(Listed)
    assert str(e.value) == "block 'test-listed': capabilities must be a frozenset of words, not ['readout']"


def test_a_patchify_without_patch_dim_is_refused():
    class Cutter(BlockSpec):
        block = "test-cutter"
        capabilities = frozenset({"patchify"})

    with pytest.raises(ValueError) as e:
        vitdsl.register_block(Cutter)
    assert str(e.value).startswith("block 'test-cutter' declares 'patchify' but has no method patch_dim: cuts an "
                                   "image into patch tokens")


# -- MAE and SimMIM -------------------------------------------------------------------------------
BUILTIN = ["patchify: {patch: 8, dim: 32}", "pos-embed: learned", "tokens: 1", "pool: cls", "head: 5"]
CUSTOM = ["test-patches: {}", "test-positions: {}", "test-cls: {}", "test-pool: {}", "test-head: {}"]
PARTS = {
    "mae": """  decoder:
    input: {tokens: [$patches, $encoder_dim]}
    layers:
      - global-attn: {heads: 2, dim_head: 8}
      - head: {classes: $patch_values}""",
    "simmim": """  to_pixels:
    input: {tokens: [$masked, $encoder_dim]}
    layers:
      - head: {classes: $patch_values}""",
    "mp3": """  head:
    input: {tokens: [$patches, $encoder_dim]}
    layers:
      - head: {classes: $patches}""",
}


def objective(kind: str, embed: str, positions: str, cls: str | None, pool: str, head: str, body: str = "global-attn: "
              "{heads: 2, dim_head: 8}", settings: str = "masking_ratio: 0.5") -> str:
    cls = f"      - {cls}\n        name: cls\n" if cls else ""
    return f"""
name: {kind}-test
encoder:
  blueprint:
    name: enc
    input: {{image: [3, 32, 32]}}
    layers:
      - {embed}
        name: embed
      - {positions}
        name: pos
{cls}      - repeat: 2
        name: blocks
        layers:
          - {body}
            name: attn
          - mlp: {{hidden: 64}}
            name: ff
      - norm: layer
      - {pool}
        name: pool
      - {head}
        name: head
objective:
  {kind}: {{{settings}}}
parts:
{PARTS[kind]}
"""


def copy_builtin_weights(ours: nn.Module, builtin: nn.Module) -> None:
    """Give ``ours`` (test blocks) the weights of ``builtin`` (the built-in blocks): the test blocks name their
    tensors as the built-in modules do (proj, pos)."""
    theirs = builtin.state_dict()
    assert {k: v.shape for k, v in ours.state_dict().items()} == {k: v.shape for k, v in theirs.items()}
    ours.load_state_dict(theirs)


@pytest.mark.parametrize("kind", ["mae", "simmim"])
def test_masked_image_objectives_find_and_use_user_blocks(write, kind):
    custom = vitdsl.validate(write(objective(kind, *CUSTOM)))
    builtin = vitdsl.validate(write(objective(kind, *BUILTIN), "builtin.yaml"))
    for design in (custom, builtin):
        roles = design.roles
        assert (roles.patchify, roles.positions, roles.prefix) == ("embed", "pos", 0)
        assert roles.body == ("blocks.0.attn", "norm")  # the class token left out, the readout not run
        assert roles.keep == {"embed", "pos", "blocks.0.attn", "blocks.0.ff", "blocks.1.attn", "blocks.1.ff", "norm"}
    torch.manual_seed(0)
    theirs = vitdsl.build(write(objective(kind, *BUILTIN), "builtin.yaml"))
    ours = vitdsl.build(write(objective(kind, *CUSTOM)))
    copy_builtin_weights(ours, theirs)
    images = torch.randn(2, 3, 32, 32)
    torch.manual_seed(1)
    expected = theirs(images)
    torch.manual_seed(1)
    got = ours(images)
    assert got.item() == expected.item()  # the same arithmetic, op for op
    got.backward()
    embed, pos = ours.encoder.get_submodule("embed"), ours.encoder.get_submodule("pos")
    assert embed.proj.weight.grad.abs().sum() > 0 and pos.pos.grad.abs().sum() > 0


def test_a_patch_embedding_without_the_capability_is_not_picked(write):
    path = write(objective("mae", "test-plain-patches: {}", *CUSTOM[1:]))
    with pytest.raises(VitdslError) as e:
        vitdsl.validate(path)
    assert e.value.message == "mae: the encoder 'enc' has no patchify layer to cut images into patch tokens"
    assert e.value.hint == "masked image objectives need an encoder that starts with '- patchify'"


def test_naming_a_layer_without_the_capability_is_refused(write):
    text = objective("mae", *CUSTOM, settings="masking_ratio: 0.5, positions: cls")
    with pytest.raises(VitdslError) as e:
        vitdsl.validate(write(text))
    assert e.value.message == "mae: 'cls' is a test-cls, a layer that adds no positions"


def test_positions_without_the_capability_are_not_picked(write):
    path = write(objective("simmim", CUSTOM[0], "test-plain-positions: {}", None, *CUSTOM[3:]))
    roles = vitdsl.validate(path).roles
    assert (roles.positions, roles.body) == (None, ("pos", "norm"))  # run as the body's first layer


def test_a_readout_without_the_capability_is_taken_for_the_body(write):
    path = write(objective("simmim", *CUSTOM[:3], "test-plain-pool: {}", "test-plain-head: {}"))
    with pytest.raises(VitdslError) as e:
        vitdsl.validate(path)
    assert e.value.message == ("simmim: the body turns the 16 patch tokens into vector 5; the objective reads the "
                               "masked ones back, so it needs one token per patch")


# -- DINO ------------------------------------------------------------------------------------------
DINO = """
name: dino-test
encoder:
  blueprint:
    name: enc
    input: {{image: [3, 32, 32]}}
    layers:
      - test-patches: {{}}
        name: embed
      - test-cls: {{}}
      - global-attn: {{heads: 2, dim_head: 8}}
      - {pool}
        name: pool
      - {head}
        name: head
objective:
  dino: {{}}
parts:
  projector:
    input: {{vector: [$embedding_dim]}}
    layers:
      - head: {{classes: 16}}
"""


@pytest.mark.parametrize("head,embedding,width", [("test-head: {}", "pool", 32), ("test-plain-head: {}", "head", 5)])
def test_dino_embeds_before_a_user_classifier(write, head, embedding, width):
    design = vitdsl.validate(write(DINO.format(pool="test-pool: {}", head=head)))
    assert design.roles.embedding == embedding
    assert design.values == {"embedding_dim": width}


def test_dino_trains_through_user_blocks(write):
    torch.manual_seed(0)
    model = vitdsl.build(write(DINO.format(pool="test-pool: {}", head="test-head: {}")))
    assert "head" not in dict(model.encoder.named_children())  # the classifier is not run, so not built
    loss = model(torch.rand(4, 3, 32, 32))
    loss.backward()
    assert torch.isfinite(loss) and model.encoder.get_submodule("embed").proj.weight.grad is not None


# -- MP3 -------------------------------------------------------------------------------------------
def test_mp3_attends_to_the_visible_tokens_through_a_user_attention(write):
    path = write(objective("mp3", *CUSTOM, body="test-attn: {}", settings="masking_ratio: 0.75"))
    design = vitdsl.validate(path)
    assert (design.roles.positions, design.roles.body) == (None, ("blocks.0.attn", "norm"))
    torch.manual_seed(0)
    model = vitdsl.build(path)
    seen = []
    for i in range(2):
        model.encoder.get_submodule(f"blocks.{i}.attn").register_forward_pre_hook(
            lambda _, args, kwargs: seen.append((args[0].shape, kwargs["context"].shape)), with_kwargs=True)
    loss = model(torch.randn(2, 3, 32, 32))
    assert seen == [(torch.Size([2, 16, 32]), torch.Size([2, 4, 32]))] * 2  # 16 queries, the 4 visible as keys
    loss.backward()
    assert torch.isfinite(loss)


def test_mp3_refuses_a_user_attention_that_takes_no_context(write):
    path = write(objective("mp3", *CUSTOM, body="test-mixer: {}", settings="masking_ratio: 0.75"))
    with pytest.raises(VitdslError) as e:
        vitdsl.validate(path)
    assert e.value.path == "blocks.0.attn"
    assert e.value.message == ("mp3: every attention in the body takes its keys and values from the visible patch "
                               "tokens, which 'blocks.0.attn' (test-mixer) cannot: test-mixer attends only to its "
                               "own tokens")


def test_mp3_refuses_user_positions_in_its_body(write):
    path = write(objective("mp3", *CUSTOM, body="test-attn: {}", settings="body: [pos, norm]"))
    with pytest.raises(VitdslError) as e:
        vitdsl.validate(path)
    assert e.value.path == "pos"
    assert e.value.message == ("mp3: the body holds the positions layer 'pos', but MP3 feeds patch tokens without "
                               "positions (it predicts them)")
