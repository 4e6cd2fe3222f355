"""MP3: the loss equals vit-pytorch's with the same weights and the same random mask; every parameter
trains; a body whose attention cannot attend to the visible tokens is refused before any weight exists."""
import pytest
import torch
from objective_refs import grads_reach_every_parameter

import vitdsl
from vitdsl import VitdslError
from vitdsl.interop.vit_pytorch import import_weights

SMALL = {"encoder.image_size": 32, "encoder.patch": 8, "encoder.dim": 32, "encoder.depth": 2, "encoder.heads": 2,
         "encoder.dim_head": 8, "encoder.mlp": 64, "encoder.classes": 5}


def reference(ratio, dropout):
    from vit_pytorch.mp3 import MP3, ViT

    v = ViT(num_classes=5, image_size=32, patch_size=8, dim=32, depth=2, heads=2, dim_head=8, mlp_dim=64,
            dropout=dropout)
    return MP3(vit=v, masking_ratio=ratio)


@pytest.mark.parametrize("ratio,train", [(0.75, False), (0.5, False), (0.5, True)])
def test_loss_equals_vit_pytorch(ratio, train):
    # eval mode with the README's dropout, or training mode without dropout: no randomness but the mask
    dropout = 0.0 if train else 0.1
    torch.manual_seed(0)
    ref = reference(ratio, dropout).train(train)
    ours = vitdsl.build("objectives/mp3", overrides={**SMALL, "encoder.dropout": dropout,
                                                     "masking_ratio": ratio}).train(train)
    import_weights(ours, ref)
    x = torch.randn(3, 3, 32, 32)
    torch.manual_seed(1)
    expected = ref(x)
    torch.manual_seed(1)
    got = ours(x)
    assert abs(got.item() - expected.item()) <= 1e-5
    # the reference holds the ViT's classifier head (LayerNorm + Linear), which MP3 never runs; we do not build it
    held = sum(p.numel() for p in ref.parameters()) - (2 * 32 + 32 * 5 + 5)
    assert sum(p.numel() for p in ours.parameters()) == held


def test_the_mask_matters():
    torch.manual_seed(0)
    ours = vitdsl.build("objectives/mp3", overrides=SMALL).eval()
    x = torch.randn(2, 3, 32, 32)
    losses = set()
    for seed in (1, 2):
        torch.manual_seed(seed)
        losses.add(round(ours(x).item(), 6))
    assert len(losses) == 2


def test_backward_reaches_every_parameter():
    torch.manual_seed(0)
    ours = vitdsl.build("objectives/mp3", overrides=SMALL)
    ours(torch.randn(2, 3, 32, 32)).backward()
    assert grads_reach_every_parameter(ours) == []


def test_readme_sizes_hold_the_reference_parameters_less_the_unused_ones():
    # vit-pytorch's MP3 (README arguments): 40,076,648, of which the ViT's classifier head (LayerNorm 2,048 and
    # Linear 1,025,000) is never run; the sincos positions have no parameters
    assert vitdsl.summary("objectives/mp3").total_params == 40_076_648 - 1_027_048


def test_positions_are_not_run_and_the_encoder_loads_into_the_classifier():
    ours = vitdsl.build("objectives/mp3", overrides=SMALL)
    assert ours.roles.positions is None
    assert ours.patch_positions() is None
    vit = vitdsl.build("mp3_vit", overrides={k.removeprefix("encoder."): v for k, v in SMALL.items()})
    result = vit.load_state_dict(ours.encoder.state_dict(), strict=False)
    assert sorted(result.missing_keys) == ["head.fc.bias", "head.fc.weight", "head.norm.bias", "head.norm.weight"]
    assert result.unexpected_keys == []


def test_a_vit_with_class_token_trains_without_it():
    design = vitdsl.load("objectives/mp3", overrides=SMALL).resolve()
    bp = design.blueprint.to_dict()
    bp["encoder"] = {"blueprint": "vit", "set": {k.removeprefix("encoder."): v for k, v in SMALL.items()}}
    from vitdsl.blueprint.load import from_data

    ours = vitdsl.build(from_data(bp))
    assert ours.roles.body == ("blocks.0.attn", "norm")
    assert not {"tokens", "pos_embed", "pool", "head"} & set(ours.roles.keep)
    ours(torch.randn(2, 3, 32, 32)).backward()
    assert grads_reach_every_parameter(ours) == []


ENCODER = """
name: bad
encoder:
  blueprint:
    name: enc
    input: {{image: [3, 32, 32]}}
    layers:
      - patchify: {{patch: 8, dim: 32}}
      - pos-embed: sincos2d
      - global-attn: {{heads: 2, dim_head: 8}}
      - {attn}
        name: second
      - mlp: {{hidden: 64}}
      - pool: mean
objective:
  mp3: {{{settings}}}
parts:
  head:
    input: {{tokens: [$patches, 32]}}
    layers:
      - head: {{classes: $patches}}
"""


@pytest.mark.parametrize("attn,why", [
    ("memory-attn: {heads: 2, dim_head: 8, memories: 2}", "memory-attn attends only to its own tokens"),
    ("lsa-attn: {heads: 2, dim_head: 8}", "lsa-attn attends only to its own tokens"),
    ("reduced-attn: {heads: 2, dim_head: 8, kv_reduction: 2}", "reduced-attn attends only to its own tokens"),
    ("channel-attn: {heads: 2}", "channel-attn attends only to its own tokens"),
    ("token-merge: {tokens: 4}", "token-merge attends only to its own tokens"),
])
def test_an_attention_that_cannot_take_the_visible_tokens_is_refused(write, attn, why):
    path = write(ENCODER.format(attn=attn, settings="masking_ratio: 0.5"))
    with pytest.raises(VitdslError) as e:
        vitdsl.validate(path)
    assert e.value.path == "second"
    assert e.value.message == (f"mp3: every attention in the body takes its keys and values from the visible patch "
                               f"tokens, which 'second' ({attn.split(':')[0]}) cannot: {why}")
    assert e.value.hint == "MP3 needs attention that takes a context, such as global-attn over tokens (over: tokens)"
    assert str(e.value.location).endswith("bp.yaml:16:8")


def test_a_body_that_adds_positions_is_refused(write):
    path = write(ENCODER.format(attn="mlp: {hidden: 64}", settings="body: [pos_embed, mlp]"))
    with pytest.raises(VitdslError) as e:
        vitdsl.validate(path)
    assert e.value.path == "pos_embed"
    assert e.value.message == ("mp3: the body holds the positions layer 'pos_embed', but MP3 feeds patch tokens "
                               "without positions (it predicts them)")


def test_naming_a_positions_layer_is_refused(write):
    path = write(ENCODER.format(attn="mlp: {hidden: 64}", settings="positions: pos_embed"))
    with pytest.raises(VitdslError) as e:
        vitdsl.validate(path)
    assert e.value.message == ("mp3: positions: MP3 feeds the body patch tokens without positions (it predicts "
                               "them), so no positions layer runs; leave this setting out")


def test_a_head_that_predicts_the_wrong_number_of_positions_is_refused(write):
    path = write(ENCODER.format(attn="mlp: {hidden: 64}", settings="").replace("classes: $patches", "classes: 10"))
    with pytest.raises(VitdslError) as e:
        vitdsl.validate(path)
    assert e.value.path == "head"
    assert e.value.message == "part 'head' gives tokens of width 10, but the objective needs 16"
