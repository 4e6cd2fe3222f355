"""CrossViT: cross_vit.yaml's named variants (with ``dagger: true`` the † models, and at 408 with the large-patch
stream at 384) are timm's ``crossvit_*`` models exactly: the same parameters, and the same outputs once timm's
weights, all re-drawn at random, are imported. The zoo default stays vit-pytorch's (tests/test_parity.py); the
sweep (``make timm-sweep``) checks every model's outputs."""
import copy

import pytest
import torch
from rules_check import assert_graph_agrees
from timm_oracle import TOLERANCE, difference, imported

import vitdsl
from vitdsl.errors import VitdslError
from vitdsl.interop.timm import crossvit

timm = pytest.importorskip("timm")


def test_the_family_covers_every_name_timm_registers():
    assert sorted(crossvit.MODELS) == sorted(timm.list_models("crossvit_*"))
    assert len(crossvit.MODELS) == 11
    assert crossvit.MODELS["crossvit_18_dagger_408"] == ("cross_vit", "18", {"dagger": True, "image_size": 408,
                                                                             "sizes": [408, 384]})


@pytest.fixture(scope="module")
def tiny():
    """(timm's crossvit_tiny_240 redrawn, ours with its weights, an input), built once for the tests below."""
    return imported("crossvit_tiny_240")


def test_the_smallest_model_is_timms_exactly(tiny):
    ref, model, x = tiny
    with torch.no_grad():
        want = ref(x)
        assert want.abs().max() > 1  # the random weights reach the logits
        assert (model(x) - want).abs().max() < TOLERANCE


def test_a_dagger_model_is_timms_exactly():
    assert difference("crossvit_9_dagger_240") < TOLERANCE


def _residual_around_the_projections(model):
    for module in model.modules():
        if hasattr(module, "inner_residual"):
            module.inner_residual = False


def _context_not_normalised(model):
    for module in model.modules():
        if hasattr(module, "context_norm"):
            module.context_norm = False


def _no_resize(model):
    model.block("embed.lg.patch_embed").resize = None


def _heads_summed(model):
    model.block("readout.merge").mode = "add"


@pytest.mark.parametrize("wrong", [_residual_around_the_projections, _context_not_normalised, _heads_summed])
def test_a_wrong_wiring_shows(tiny, wrong):
    """The check above sees vit-pytorch's fusion (the cls token's residual at its own width, around the
    projections; the other stream's patches not normalised) and its summed heads."""
    ref, model, x = tiny
    model = copy.deepcopy(model)
    with torch.no_grad():
        wrong(model)
        assert (model(x) - ref(x)).abs().max() > 10 * TOLERANCE


def test_the_large_patch_stream_sees_the_image_resized(tiny):
    _, model, x = tiny
    model = copy.deepcopy(model)
    _no_resize(model)
    with pytest.raises(RuntimeError):  # 15×15 patches of the 240 image: the position table is for 14×14
        model(x)


def test_the_vit_pytorch_default_keeps_its_own_fusion_and_stream_norms():
    keys = vitdsl.build("cross_vit", device="meta").state_dict()
    assert "encoder.0.cross.0.branches.sm.cross_attn.project_in.weight" in keys  # one Linear map
    assert "encoder.0.transformer.sm.norm.weight" in keys
    paper = vitdsl.build("cross_vit", "tiny", device="meta").state_dict()
    assert "encoder.0.cross.0.branches.sm.cross_attn.project_in.0.weight" in paper  # LayerNorm → GELU → Linear
    assert not any(".transformer.sm.norm." in k for k in paper)


def test_rules_agree_with_modules_beyond_the_named_variants():
    """tests/test_rules.py checks every named variant; the † models and the 408 ones take overrides."""
    assert_graph_agrees(vitdsl.validate("cross_vit", "9", overrides={"dagger": True, "image_size": 408,
                                                                             "sizes": [408, 384]}))


def test_resize_is_for_images(write):
    with pytest.raises(VitdslError) as e:
        vitdsl.validate(str(write("name: t\ninput: {volume: [3, 4, 32, 32]}\nlayers:\n"
                                  "  - conv-stem: {channels: [8], resize: 16}\n")))
    assert e.value.message == "resize is for images, but the input is a volume (input here: volume 3×4×32×32)"
