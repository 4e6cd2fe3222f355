"""MAE: the loss equals vit-pytorch's with the same weights and the same random mask; every parameter
trains; the objective is checked before any weight exists."""
import pytest
import torch
from objective_refs import grads_reach_every_parameter, old_shapes

import vitdsl
from vitdsl import VitdslError
from vitdsl.interop.vit_pytorch import import_weights

SMALL = {"encoder.image_size": 32, "encoder.patch": 8, "encoder.dim": 32, "encoder.depth": 2, "encoder.heads": 2,
         "encoder.dim_head": 8, "encoder.mlp": 64, "encoder.classes": 5, "decoder_dim": 16, "decoder_depth": 2,
         "decoder_heads": 2, "decoder_dim_head": 8}


def reference(decoder_dim=16, depth=2):
    from vit_pytorch import ViT
    from vit_pytorch.mae import MAE

    v = old_shapes(ViT(image_size=32, patch_size=8, num_classes=5, dim=32, depth=2, heads=2, dim_head=8, mlp_dim=64))
    return MAE(encoder=v, decoder_dim=decoder_dim, masking_ratio=0.75, decoder_depth=depth, decoder_heads=2,
               decoder_dim_head=8)


@pytest.mark.parametrize("decoder_dim", [16, 32])  # 32: equal widths, no projection
def test_loss_equals_vit_pytorch(decoder_dim):
    torch.manual_seed(0)
    ref = reference(decoder_dim)
    ours = vitdsl.build("objectives/mae", overrides={**SMALL, "decoder_dim": decoder_dim})
    assert (ours.to_decoder is None) == (decoder_dim == 32)
    import_weights(ours, ref)
    x = torch.randn(3, 3, 32, 32)
    torch.manual_seed(1)
    expected = ref(x)
    torch.manual_seed(1)
    got = ours(x)
    assert abs(got.item() - expected.item()) <= 1e-5
    # the reference holds the class token and the classifier head, which MAE never runs; we do not build them
    held = sum(p.numel() for p in ref.parameters()) - 32 - (32 * 5 + 5)
    assert sum(p.numel() for p in ours.parameters()) == held


def test_backward_reaches_every_parameter():
    torch.manual_seed(0)
    ours = vitdsl.build("objectives/mae", overrides=SMALL)
    ours(torch.randn(2, 3, 32, 32)).backward()
    assert grads_reach_every_parameter(ours) == []


def test_readme_sizes_hold_the_reference_parameters_less_the_unused_ones():
    # vit-pytorch's MAE (README arguments): 63,088,104, of which the class token (1,024) and the classifier
    # head (1,025,000) are never run
    assert vitdsl.summary("objectives/mae").total_params == 63_088_104 - 1_024 - 1_025_000


def test_encoder_weights_load_into_the_classifier():
    ours = vitdsl.build("objectives/mae", overrides=SMALL)
    vit = vitdsl.build("vit", overrides={k.removeprefix("encoder."): v for k, v in SMALL.items()
                                         if k.startswith("encoder.")})
    result = vit.load_state_dict(ours.encoder.state_dict(), strict=False)
    assert sorted(result.missing_keys) == ["head.fc.bias", "head.fc.weight", "tokens.cls"]
    assert result.unexpected_keys == []


def test_a_body_that_needs_the_patch_grid_is_refused(write):
    path = write("""
name: bad
encoder:
  blueprint:
    name: enc
    input: {image: [3, 32, 32]}
    layers:
      - patchify: {patch: 8, dim: 32}
      - pos-embed: learned
      - dwconv: {kernel: 3}
      - global-attn: {heads: 2, dim_head: 8}
      - pool: mean
objective:
  mae: {masking_ratio: 0.5}
parts:
  decoder:
    input: {tokens: [$patches, 32]}
    layers:
      - head: {classes: $patch_values}
""")
    with pytest.raises(VitdslError) as e:
        vitdsl.validate(path)
    assert e.value.path == "dwconv"
    assert e.value.message.startswith("mae: the body runs on the 8 visible patch tokens alone (no class token, "
                                      "no patch grid), which 'dwconv' (dwconv) cannot take")


def test_a_decoder_of_the_wrong_width_is_refused():
    from vitdsl.blueprint.load import from_data

    bp = vitdsl.load("objectives/mae", overrides=SMALL)
    data = bp.to_dict()
    data["parts"]["decoder"]["input"] = {"tokens": ["$patches", 24]}
    with pytest.raises(VitdslError) as e:
        from_data(data, bp.source, bp.file).resolve()
    assert e.value.path == "decoder"
    assert e.value.message == "part 'decoder' takes tokens 16×24, but the objective feeds it tokens 16×16"
    assert str(e.value.location).endswith("mae.yaml:23:5")


def test_layers_between_patchify_and_body_must_run():
    with pytest.raises(VitdslError) as e:
        vitdsl.validate(_with_encoder("t2t_vit"))  # its T2T layers sit between patchify and body
    assert e.value.message.startswith("mae: the encoder layers ")
    assert "but the objective would not run them" in e.value.message


def _with_encoder(name):
    from vitdsl.blueprint.load import from_data

    bp = vitdsl.load("objectives/mae")
    data = bp.to_dict()
    data["encoder"] = name
    return from_data(data, bp.source, bp.file)
