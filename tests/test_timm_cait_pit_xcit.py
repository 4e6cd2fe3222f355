"""CaiT, PiT and XCiT: the blueprints' named variants are timm's models exactly (``vitdsl.interop.timm``'s
family modules): the same parameters, and the same outputs once timm's weights, all re-drawn at random,
are imported. The zoo defaults stay vit-pytorch's (tests/test_parity.py)."""
import importlib

import pytest
import torch
from rules_check import assert_graph_agrees
from timm_oracle import TOLERANCE, redrawn

import vitdsl
from vitdsl.errors import VitdslError
from vitdsl.interop.transfer import import_state_dict

timm = pytest.importorskip("timm")

FAMILIES = {name: importlib.import_module(f"vitdsl.interop.timm.{name}") for name in ("cait", "pit", "xcit")}
# the weights' scale (``redrawn``): large enough that the logits pass 5 and CaiT's talking heads show, small
# enough that float32 rounding stays under the absolute tolerance. PiT's logits reach 15-18 at 0.5, where the
# same model summed by a different GEMM (oneDNN's, which vitdsl's CPU inference runs) differs by 1.1e-5 (timm's
# own model run on oneDNN: 9e-6); at 0.4 they reach 8.6-11 and differ by under 5e-6.
STD = {"cait": 0.5, "pit": 0.4, "xcit": 0.5}


def ours(family: str, name: str):
    blueprint, variant, overrides = FAMILIES[family].MODELS[name]
    return blueprint, variant, overrides or None


def imported(family: str, name: str) -> tuple[torch.nn.Module, torch.nn.Module, torch.Tensor]:
    """(timm's model redrawn, ours with its weights, an input at timm's default size)."""
    ref = redrawn(name, std=STD[family])
    blueprint, variant, overrides = ours(family, name)
    model = vitdsl.build(blueprint, variant, overrides=overrides).eval()
    mod = FAMILIES[family]
    mapping = import_state_dict(model, ref.state_dict(), mod.RULES, mod.ORDINALS, source="timm")
    assert set(mapping) >= set(ref.state_dict())  # every timm tensor found its place
    return ref, model, torch.randn(1, *ref.pretrained_cfg["input_size"], generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("family,name", [("cait", "cait_xxs24_224"), ("pit", "pit_ti_224"),
                                         ("pit", "pit_ti_distilled_224"), ("xcit", "xcit_nano_12_p16_224")])
def test_the_smallest_models_are_timms_exactly(family, name):
    ref, model, x = imported(family, name)
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in ref.parameters())
    with torch.no_grad():
        want, got = ref(x), model(x)
    assert want.abs().max() > 5  # the random weights reach the logits
    assert (got - want).abs().max() < TOLERANCE


def _transpose_talking_heads(model):
    for i in range(24):
        mix = model.block(f"blocks.{i}.attn").talk_pre.weight
        mix.copy_(mix.t().clone())


def _swap_lpi_order(model):
    for i in range(12):
        model.block(f"blocks.{i}.lpi").act_first = False


def _exp_temperature(model):
    for i in range(12):
        model.block(f"blocks.{i}.attn").exp = True


@pytest.mark.parametrize("family,name,wrong", [("cait", "cait_xxs24_224", _transpose_talking_heads),
                                               ("xcit", "xcit_nano_12_p16_224", _swap_lpi_order),
                                               ("xcit", "xcit_nano_12_p16_224", _exp_temperature)])
def test_a_wrong_wiring_shows(family, name, wrong):
    """The check above sees the vit-pytorch variants of the details (bare (h, h) mixes, applied the other
    way round; BatchNorm before GELU; exp of the temperature)."""
    ref, model, x = imported(family, name)
    with torch.no_grad():
        wrong(model)
        assert (model(x) - ref(x)).abs().max() > 10 * TOLERANCE


@pytest.mark.parametrize("family", FAMILIES)
def test_the_families_cover_every_name_timm_registers(family):
    assert sorted(FAMILIES[family].MODELS) == sorted(timm.list_models(f"{family}_*"))


@pytest.mark.parametrize("name,variant,overrides", [("pit", "ti", {"distilled": True}),
                                                    ("xcit", "nano12", {"patch": 8}), ("xcit", "tiny12", None)])
def test_rules_agree_with_modules_beyond_the_named_variants(name, variant, overrides):
    """tests/test_rules.py checks every named variant; these are timm's models that take an override."""
    assert_graph_agrees(vitdsl.validate(name, variant, overrides=overrides))


def test_the_vit_pytorch_overlay_keeps_its_own_talking_heads_temperature_and_lpi_order():
    cait = vitdsl.build("cait", overrides={"image_size": 32, "patch": 16, "dim": 16, "depth": 1, "heads": 2,
                                           "dim_head": 8, "mlp": 16, "classes": 3})
    mixes = {k for k in cait.state_dict() if "mix" in k or "talk" in k}
    assert mixes == {f"{block}.attn.mix_{when}" for block in ("blocks.0", "cls_blocks.0", "cls_blocks.1")
                     for when in ("pre", "post")}  # bare (h, h) matrices, in the class attention too
    xcit = vitdsl.build("xcit", overrides={"image_size": 32, "patch": 16, "dim": 16, "depth": 1, "heads": 2,
                                           "dim_head": 8, "mlp": 16, "classes": 3})
    attn, lpi = xcit.block("blocks.0.attn"), xcit.block("blocks.0.lpi")
    assert attn.exp and not lpi.act_first
    paper = vitdsl.build("xcit", "nano12")
    assert not paper.block("blocks.0.attn").exp and paper.block("blocks.0.lpi").act_first


def test_xcit_nano_normalises_only_the_cls_token_before_its_class_mlp():
    norm = vitdsl.build("xcit", "nano12").block("cls_blocks.0.norm")
    x = torch.randn(1, 5, 128)
    y = norm(x)
    assert torch.equal(y[:, 1:], x[:, 1:]) and torch.allclose(y[:, 0].mean(), torch.tensor(0.0), atol=1e-5)


def test_new_options_refuse_what_they_cannot_do(write):
    head = ("name: t\ninput: {image: [3, 32, 32]}\nlayers:\n  - patchify: {patch: 16, dim: 16}\n")
    with pytest.raises(VitdslError) as e:
        vitdsl.validate(str(write(head + "  - norm: {tokens: prefix}\n")))
    assert e.value.message == "norm with tokens: prefix needs special tokens leading the sequence (input here: " \
                              "tokens 4×16)"
    with pytest.raises(VitdslError) as e:
        vitdsl.validate(str(write(head + "  - tokens: 1\n  - cross-attn: {heads: 2, context_residual: true}\n")))
    assert "context_residual adds the normalised patch tokens to themselves: it needs context_norm, norm: pre, " \
           "queries: prefix and context: patches" in e.value.message
    with pytest.raises(VitdslError) as e:
        vitdsl.validate(str(write(head + "  - tokens: 1\n  - pos-embed: fourier\n")))
    assert e.value.message == "fourier positions cover patch tokens only, but 1 special token(s) lead the sequence " \
                              "(input here: tokens 5×16)"
