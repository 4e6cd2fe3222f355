"""SigLIP (the MAP head: attention pooling by a learned query, then a residual MLP) and DINOv2 with registers:
siglip.yaml's and dinov2.yaml's named variants are timm's ``vit_*_siglip_*`` (MAP) and ``vit_*_reg4_dinov2``
models exactly: the same parameters, and the same outputs once timm's weights, all re-drawn at random, are
imported. The sweep (``make timm-sweep``) checks every model's outputs."""
import copy

import pytest
import torch
from timm_oracle import TOLERANCE, imported, std_for

import vitdsl
import vitdsl.interop.timm as vt
from vitdsl.errors import VitdslError
from vitdsl.interop.timm import dinov2, siglip, vit

timm = pytest.importorskip("timm")

EVERY = sorted(siglip.MODELS) + sorted(dinov2.MODELS)


def test_the_families_cover_the_names_timm_registers_once():
    map_pooled = {n for n in timm.list_models("vit_*siglip*") if "_gap_" not in n}
    # 384 pixels are no multiple of 14-pixel patches: timm's convolution drops the last 6 rows and columns
    assert set(siglip.MODELS) == map_pooled - {"vit_so400m_patch14_siglip_384"}
    assert len(siglip.MODELS) == 15
    assert sorted(dinov2.MODELS) == timm.list_models("vit_*_reg4_dinov2")
    assert not set(vit.MODELS) & set(EVERY) and set(EVERY) <= set(vt.names())
    assert vt.target("vit_base_patch16_siglip_224") == ("siglip", "base", {})
    assert vt.target("vit_so400m_patch16_siglip_384") == ("siglip", "so400m", {"patch": 16, "image_size": 384,
                                                                              "act": "gelu-tanh"})
    assert vt.target("vit_giant_patch14_reg4_dinov2") == ("dinov2", "giant", {})
    with pytest.raises(VitdslError) as e:  # the hint lists the closest name's family, not every vit_* model
        vt.target("vit_small_patch14_reg5_dinov2")
    assert e.value.hint == ("did you mean 'vit_small_patch14_reg4_dinov2'? (vit_* models of the dinov2 family: "
                            "vit_base_patch14_reg4_dinov2, "
                            "vit_giant_patch14_reg4_dinov2, vit_large_patch14_reg4_dinov2, "
                            "vit_small_patch14_reg4_dinov2)")
    assert vt.variants()["dinov2"] == {size: [f"vit_{size}_patch14_reg4_dinov2"]
                                       for size in ("base", "giant", "large", "small")}


def _outputs(name: str) -> tuple[torch.Tensor, torch.nn.Module, torch.Tensor]:
    """(timm's output, ours with timm's weights, the input): timm runs once, the tests below share it."""
    ref, model, x = imported(name, std_for(name))
    with torch.no_grad():
        return ref(x), model, x


@pytest.fixture(scope="module")
def siglip_base():
    return _outputs("vit_base_patch16_siglip_224")


@pytest.fixture(scope="module")
def dinov2_small():
    return _outputs("vit_small_patch14_reg4_dinov2")  # at timm's 518×518: 1374 tokens


@pytest.mark.parametrize("fixture", ["siglip_base", "dinov2_small"])
def test_the_smallest_models_are_timms_exactly(fixture, request):
    want, model, x = request.getfixturevalue(fixture)
    assert want.abs().max() > 1  # the random weights reach the features
    with torch.no_grad():
        assert (model(x) - want).abs().max() < TOLERANCE


def test_the_summary_shows_registers_as_registers():
    rows = {row["path"]: row for row in vitdsl.summary("dinov2").to_dict()["blocks"]}
    assert rows["tokens"]["pattern"] == "+1 cls, +4 registers"
    assert rows["tokens"]["output"] == [37 * 37 + 5, 384] and rows["tokens"]["params"] == 5 * 384
    assert rows["pool"]["pattern"] == "cls"  # the class token: the registers are discarded at the output
    assert vitdsl.summary("deit3").to_dict()["blocks"][2]["pattern"] == "+1 cls"


def test_registers_lead_the_sequence():
    with pytest.raises(VitdslError) as e:
        vitdsl.validate(vitdsl.loads("name: t\ninput: {tokens: [16, 32]}\nlayers:\n"
                                     "  - tokens: {cls: 1, registers: 4, position: last}\n"))
    assert str(e.value).endswith("tokens: tokens: registers follow the class tokens at the front: they take "
                                 "'position: first'")


def _query_added_back(model):
    model.block("map").residual = True


def _keys_for_values(model):
    # the pool's keys and values swapped: timm's kv is keys first
    qkv = model.block("map").qkv
    d = qkv.weight.shape[1]
    for t in (qkv.weight, qkv.bias):
        t[d:] = torch.cat((t[2 * d:], t[d:2 * d])).clone()


def _registers_before_cls(model):
    # the sequence reg0, cls, reg1..3: the readout takes a register
    tokens = model.block("tokens")
    first = torch.cat((tokens.cls, tokens.registers))
    tokens.cls.copy_(first[1:2])
    tokens.registers.copy_(torch.cat((first[:1], first[2:])))


@pytest.mark.parametrize("fixture,wrong", [("siglip_base", _query_added_back), ("siglip_base", _keys_for_values),
                                           ("dinov2_small", _registers_before_cls)])
def test_a_wrong_wiring_shows(fixture, wrong, request):
    """The check above sees NaViT's attention pooling (the query added back), the pool's keys and values the
    wrong way round, and the class token read from behind the registers."""
    want, model, x = request.getfixturevalue(fixture)
    model = copy.deepcopy(model)
    with torch.no_grad():
        wrong(model)
        assert (model(x) - want).abs().max() > 10 * TOLERANCE


def test_the_giants_swiglu_is_timms():
    """DINOv2-g's SwiGLU feed-forward (timm's SwiGLUPacked: SiLU of fc1's first half times its second half) on a
    small model of its kind: the sweep cannot hold two 1.1B-parameter models in this machine's memory."""
    from timm.layers import SwiGLUPacked
    from timm.models.vision_transformer import VisionTransformer

    torch.manual_seed(0)
    ref = VisionTransformer(img_size=98, patch_size=14, embed_dim=128, depth=2, num_heads=4, mlp_ratio=4,
                            mlp_layer=SwiGLUPacked, act_layer=torch.nn.SiLU, init_values=1e-5, reg_tokens=4,
                            no_embed_class=True, num_classes=0).eval()
    with torch.no_grad():
        for t in ref.state_dict().values():
            t.copy_(torch.randn_like(t) * 0.5)  # two blocks, narrow: 0.2 leaves the features below 1
    model = vitdsl.build("dinov2", "giant", {"image_size": 98, "dim": 128, "depth": 2, "heads": 4, "dim_head": 32,
                                             "mlp": 256}).eval()
    vt.import_weights(model, ref)
    x = torch.randn(2, 3, 98, 98)
    with torch.no_grad():
        want = ref(x)
        assert want.abs().max() > 1
        assert (model(x) - want).abs().max() < TOLERANCE
