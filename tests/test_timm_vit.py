"""vitdsl.interop.timm for ViT, DeiT, distilled DeiT and DeiT III: every 224×224 model timm registers for these
families resolves to a zoo blueprint with timm's parameter count; the small ones (and one base) give timm's
outputs after importing the weights of a timm model whose every tensor was re-drawn at random."""
import re

import pytest
import timm
import torch
from timm_oracle import TOLERANCE, difference, redrawn

import vitdsl.interop.timm as vt
from vitdsl.errors import VitdslError
from vitdsl.interop.timm import vit

SIZES = r"(tiny|small|medium|base|large|giant|huge)"
EXACT = ["vit_tiny_patch16_224", "vit_small_patch32_224", "deit_small_patch16_224", "deit_tiny_distilled_patch16_224",
         "deit3_small_patch16_224", "vit_base_patch16_224"]


def timm_names() -> set[str]:
    pattern = re.compile(rf"(vit_{SIZES}_patch\d+|deit_{SIZES}(_distilled)?_patch16|deit3_{SIZES}_patch\d+)_224")
    return {n for n in timm.list_models(["vit_*", "deit*"]) if pattern.fullmatch(n)}


def test_names_cover_every_224_model_timm_registers_for_these_families():
    vit_family = set(vit.MODELS)  # the other families: their own tests
    assert vit_family == timm_names()
    assert len(vit_family) == 23
    assert vt.target("deit3_huge_patch14_224") == ("deit3", "huge", {})
    assert vt.target("vit_small_patch32_224") == vt.Target("vit", "small", {"patch": 32})
    # timm registers three without a classifier: so does the blueprint, with classes 0
    assert vt.target("vit_small_patch8_224") == ("vit", "small", {"patch": 8, "classes": 0})
    # the README's column: the models a variant is as it stands
    assert vt.variants()["vit"]["tiny"] == ["deit_tiny_patch16_224", "vit_tiny_patch16_224"]
    assert vt.variants()["deit3"]["huge"] == ["deit3_huge_patch14_224"] and "huge" not in vt.variants()["vit"]


@pytest.mark.parametrize("name", EXACT)
def test_exact_parameters_and_outputs(name):
    assert difference(name, batch=2) < TOLERANCE


def test_unknown_names_say_the_closest():
    with pytest.raises(VitdslError) as e:
        vt.build("vit_small_patch16_244")
    assert e.value.message == "no timm model 'vit_small_patch16_244' in the zoo"
    assert e.value.hint == ("did you mean 'vit_small_patch16_224'? (vit_* models of the vit family: "
                            "vit_base_patch16_224, vit_base_patch32_224, vit_base_patch8_224, vit_giant_patch14_224, "
                            "vit_huge_patch14_224, vit_large_patch14_224, vit_large_patch16_224, "
                            "vit_large_patch32_224, vit_small_patch16_224, vit_small_patch32_224, "
                            "vit_small_patch8_224, vit_tiny_patch16_224)")
    with pytest.raises(VitdslError) as e:
        vt.target("resnet50")
    assert str(e.value) == ("no timm model 'resnet50' in the zoo\n"
                            f"  hint: families: {', '.join(vt.FAMILIES)}; vitdsl.interop.timm.names() has all "
                            f"{len(vt.names())}")
    assert vt.FAMILIES[:4] == ("vit", "cait", "pit", "xcit")


def test_import_is_strict():
    ref = timm.create_model("deit_tiny_distilled_patch16_224", pretrained=False)
    ours = vt.build("deit_tiny_distilled_patch16_224")
    sd = ref.state_dict()
    missing = {k: v for k, v in sd.items() if k != "blocks.3.ls1.gamma" and k != "head_dist.bias"}
    with pytest.raises(VitdslError) as e:
        vt.import_weights(ours, missing)
    assert e.value.message == ("cannot import weights (1 problem(s)):\n"
                               "  blueprint tensor 'distill_head.fc.bias' (1000,) gets no timm weights")
    with pytest.raises(VitdslError) as e:
        vt.import_weights(ours, {**sd, "blocks.0.ls1.gamma": torch.ones(192), "fc_norm.weight": torch.ones(192)})
    assert e.value.message == (
        "cannot import weights (2 problem(s)):\n"
        "  timm tensor 'blocks.0.ls1.gamma' maps to 'blocks.0.attn.gamma', which the blueprint does not have\n"
        "  timm tensor 'fc_norm.weight' (192,) matches no rule")
    with pytest.raises(VitdslError) as e:  # a DeiT III (layer scale, patch-only positions) is not a distilled DeiT
        vt.import_weights(ours, timm.create_model("deit3_small_patch16_224", pretrained=False))
    assert e.value.message.startswith("cannot import weights (")


def test_the_patch_kernel_is_the_only_tensor_reshaped():
    """The conv kernel (D, C, p, p) becomes our linear (D, C·p·p); any other tensor must fit as it is."""
    ref = timm.create_model("vit_tiny_patch16_224", pretrained=False)
    ours = vt.build("vit_tiny_patch16_224")
    sd = ref.state_dict()
    vt.import_weights(ours, sd)
    assert torch.equal(ours.state_dict()["patchify.proj.weight"], sd["patch_embed.proj.weight"].flatten(1))
    w = sd["blocks.0.mlp.fc1.weight"]
    with pytest.raises(VitdslError) as e:
        vt.import_weights(ours, {**sd, "blocks.0.mlp.fc1.weight": w.t().contiguous()})
    assert "'blocks.0.mlp.fc1.weight' (192, 768) does not fit 'blocks.0.ff.fc1.weight' (768, 192)" in e.value.message


def test_weights_come_as_a_model_or_a_state_dict():
    ref = timm.create_model("vit_tiny_patch16_224", pretrained=False)
    ours = vt.build("vit_tiny_patch16_224")
    assert vt.import_weights(ours, ref) == vt.import_weights(ours, ref.state_dict())
    with pytest.raises(VitdslError) as e:
        vt.import_weights(ours, [1, 2])
    assert e.value.message == "timm weights come as a model or a state_dict mapping, not list"


def test_a_timm_checkpoint_file_loads_strictly_and_into_a_modified_blueprint(tmp_path):
    """The path a user with timm's published file takes: strict into the same model, through the planner into
    one at another image size and class count (positions resampled, head re-initialised, the rest exact)."""
    reference = redrawn("vit_tiny_patch16_224")
    file = tmp_path / "vit_tiny.pth"
    torch.save(reference.state_dict(), file)
    model = vt.build("vit_tiny_patch16_224").eval()
    vt.load_pretrained(model, file)
    x = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert (model(x) - reference(x)).abs().max().item() <= 1e-5
    modified = vt.build("vit_tiny_patch16_224", image_size=256, classes=10)
    with pytest.raises(VitdslError, match="does not fill the model exactly"):
        vt.load_pretrained(modified, file)
    plan = vt.load_pretrained(modified, file, plan=True, show=False)
    assert plan.summary() == "149 exact, 1 resampled, 2 re-initialised"
    assert vt.rules_for(modified) == vt.rules("vit_tiny_patch16_224")


def test_verify_against_timm_is_exact():
    from vitdsl.interop.verify import verify

    result = verify("vit", variant="tiny", against="timm:vit_tiny_patch16_224")
    assert result.exact and result.max_diff <= 1e-5 and result.reason is None
