"""SimMIM and MPP: the loss equals vit-pytorch's with the same weights and the same seed; every parameter
trains; the README sizes hold the reference's parameters less those it never runs; mistakes are caught
before any weight exists.

The parity tests run in train mode with every dropout 0, and once (MPP, the README's dropout 0.1) in eval
mode: all the objectives' random draws come before the body, so the same seed gives the same masks in
both modes, but a dropout > 0 while training would compare our dropout masks with the reference's, which
is a property of the blocks, not of the objective."""
import pytest
import torch
from objective_refs import grads_reach_every_parameter, old_shapes

import vitdsl
from vitdsl import VitdslError
from vitdsl.blueprint.load import from_data
from vitdsl.cli import main
from vitdsl.interop.vit_pytorch import import_weights

ENCODER = {"encoder.image_size": 32, "encoder.patch": 8, "encoder.dim": 32, "encoder.depth": 2,
           "encoder.heads": 2, "encoder.dim_head": 8, "encoder.mlp": 64, "encoder.classes": 5}
HEAD = 32 * 5 + 5  # the classifier head, held by both references and run by neither
CLS = 32


def vit(dropout=0.0):
    from vit_pytorch import ViT

    return old_shapes(ViT(image_size=32, patch_size=8, num_classes=5, dim=32, depth=2, heads=2, dim_head=8,
                          mlp_dim=64, dropout=dropout, emb_dropout=dropout))


def count(module) -> int:
    return sum(p.numel() for p in module.parameters())


def same_loss(ours, ref, images, seed=1) -> float:
    torch.manual_seed(seed)
    expected = ref(images)
    torch.manual_seed(seed)
    got = ours(images)
    return abs(got.item() - expected.item())


def refused(name: str, overrides: dict, edit=None) -> VitdslError:
    bp = vitdsl.load(f"objectives/{name}", overrides=overrides)
    data = bp.to_dict()
    if edit:
        edit(data)
    with pytest.raises(VitdslError) as e:
        from_data(data, bp.source, bp.file).resolve()
    return e.value


# -- SimMIM ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("ratio", [0.5, 0.3])  # 8 and 4 of the 16 patches masked
def test_simmim_loss_equals_vit_pytorch(ratio):
    from vit_pytorch.simmim import SimMIM

    torch.manual_seed(0)
    ref = SimMIM(encoder=vit(), masking_ratio=ratio)
    ours = vitdsl.build("objectives/simmim", overrides={**ENCODER, "masking_ratio": ratio})
    import_weights(ours, ref)
    assert same_loss(ours, ref, torch.randn(3, 3, 32, 32)) <= 1e-5
    # the reference holds the class token and the classifier head, which SimMIM never runs; we do not build them
    assert count(ours) == count(ref) - CLS - HEAD


def test_simmim_backward_reaches_every_parameter():
    torch.manual_seed(0)
    ours = vitdsl.build("objectives/simmim", overrides=ENCODER)
    ours(torch.randn(2, 3, 32, 32)).backward()
    assert grads_reach_every_parameter(ours) == []


def test_simmim_readme_sizes():
    # vit-pytorch's SimMIM (README arguments): 45,197,288 = the ViT's 42,047,464 + 3,149,824, of which the
    # class token (1,024) and the classifier head (1,025,000) are never run
    design = vitdsl.validate("objectives/simmim")
    assert design.values == {"patches": 64, "masked": 32, "encoder_dim": 1024, "patch_values": 3072}
    assert vitdsl.summary("objectives/simmim").total_params == 45_197_288 - 1_024 - 1_025_000


def test_simmim_pixel_head_of_the_wrong_width_is_refused():
    def edit(data):
        data["parts"]["to_pixels"]["layers"] = [{"head": {"classes": 100}}]

    e = refused("simmim", ENCODER, edit)
    assert e.path == "to_pixels"
    assert e.message == "part 'to_pixels' gives tokens of width 100, but the objective needs 192"
    assert e.hint == "end it with a layer of width 192, e.g. '- head: {classes: 192}'"


def test_simmim_ratio_that_masks_nothing_is_refused():
    e = refused("simmim", {**ENCODER, "masking_ratio": 0.05})
    assert e.message == "simmim: masking_ratio 0.05 masks no patch of 16 (int(ratio · 16) = 0)"
    assert e.hint == "mask at least one patch: masking_ratio · 16 must reach 1"


def test_an_encoder_with_layers_the_objective_would_skip_is_refused():
    def edit(data):
        data["encoder"] = "t2t_vit"

    e = refused("simmim", {}, edit)
    assert e.message == ("simmim: the encoder layers t2t.0.transformer.0.attn, t2t.0.transformer.0.ff, "
                         "t2t.0.transformer.0.norm, t2t.1.split and 4 more come between its patchify layer "
                         "'t2t.0.split' and the end of its body, but the objective would not run them")


# -- MPP ------------------------------------------------------------------------------------------------

MPP_CASES = {  # (random_patch_prob, dropout, mean and std)
    "random patches": (0.3, 0.0, None),
    "mask patch only": (0.0, 0.0, None),
    "normalised, README dropout, eval": (0.3, 0.1, ([0.4, 0.5, 0.6], [0.2, 0.25, 0.3])),
}


@pytest.mark.parametrize("case", MPP_CASES)
def test_mpp_loss_equals_vit_pytorch(case):
    from vit_pytorch.mpp import MPP

    random_patch_prob, dropout, norm = MPP_CASES[case]
    stats = dict(zip(("mean", "std"), norm)) if norm else {}
    torch.manual_seed(0)
    ref = MPP(transformer=vit(dropout), patch_size=8, dim=32, mask_prob=0.5, random_patch_prob=random_patch_prob,
              replace_prob=0.5, **stats)
    ours = vitdsl.build("objectives/mpp", overrides={
        **ENCODER, "encoder.dropout": dropout, "encoder.emb_dropout": dropout, "mask_prob": 0.5,
        "random_patch_prob": random_patch_prob, **stats})
    import_weights(ours, ref)
    if dropout:
        ref.eval(), ours.eval()
    images = torch.rand(4, 3, 32, 32) if norm is None else (torch.rand(4, 3, 32, 32) - 0.5) / 0.25
    assert same_loss(ours, ref, images) <= 1e-5
    # the reference holds the classifier head, which MPP never runs; we do not build it
    assert count(ours) == count(ref) - HEAD


def test_mpp_backward_reaches_every_parameter():
    torch.manual_seed(0)
    ours = vitdsl.build("objectives/mpp", overrides={**ENCODER, "mask_prob": 0.5})
    ours(torch.rand(4, 3, 32, 32)).backward()
    assert grads_reach_every_parameter(ours) == []


def test_mpp_readme_sizes():
    # vit-pytorch's MPP (README arguments): 42,575,336 = the ViT's 42,047,464 + 527,872, of which the
    # classifier head (1,025,000) is never run
    design = vitdsl.validate("objectives/mpp")
    assert design.values == {"patches": 64, "chosen": 10, "encoder_dim": 1024, "patch_values": 3072,
                             "colours": 512}
    assert design.roles.body == ("tokens", "norm")  # the class token, positions and dropout are the encoder's
    assert vitdsl.summary("objectives/mpp").total_params == 42_575_336 - 1_025_000


def test_mpp_encoder_weights_load_into_the_classifier():
    ours = vitdsl.build("objectives/mpp", overrides=ENCODER)
    classifier = vitdsl.build("vit", overrides={k.removeprefix("encoder."): v for k, v in ENCODER.items()})
    result = classifier.load_state_dict(ours.encoder.state_dict(), strict=False)
    assert sorted(result.missing_keys) == ["head.fc.bias", "head.fc.weight"]
    assert result.unexpected_keys == []


def test_mpp_build_prints_the_summary(capsys):
    assert main(["build", "objectives/mpp", "--set", "encoder.image_size=64"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("mpp — objective 'mpp', 41,488,896 trainable parameters in all")
    assert "not run by mpp, so not built: pool, head." in out
    assert "mpp.to_bits  tokens 4×1024 → tokens 4×512" in out
    assert out.rstrip().endswith("the objective's own tensors: mask_token 3072 (3,072 parameters)")


def test_mpp_probabilities_that_overlap_are_refused():
    e = refused("mpp", {**ENCODER, "replace_prob": 0.8})
    assert e.message == ("mpp: random_patch_prob 0.3 + replace_prob 0.8 is more than 1: a chosen patch is "
                         "replaced by the mask patch or by a random one, not both")


def test_mpp_out_of_range_and_lone_settings_are_refused():
    assert refused("mpp", {"mask_prob": 0}).message == "mpp: mask_prob: Input should be greater than 0"
    assert refused("mpp", {"mean": [0.5] * 3}).message == ("mpp: mean and std un-normalise the images together: "
                                                          "give both or neither")
    e = refused("mpp", {"mean": [0.5] * 2, "std": [0.2] * 2})
    assert e.message == "mpp: mean has 2 values for 3 channels"
    assert e.hint == "give one value per channel, or one for all"


def test_mpp_bit_head_of_the_wrong_width_is_refused():
    def edit(data):
        data["parts"]["to_bits"]["layers"] = [{"head": {"classes": 256}}]

    e = refused("mpp", {**ENCODER, "output_channel_bits": 3}, edit)
    assert e.path == "to_bits"
    assert e.message == "part 'to_bits' gives tokens of width 256, but the objective needs 512"
    assert str(e.location).endswith("mpp.yaml:25:5")
