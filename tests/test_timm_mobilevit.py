"""MobileViT (v1): the blueprint's paper variants xxs, xs and s are timm's ``mobilevit_*`` exactly (the same
parameters; the same outputs once timm's weights, all re-drawn at random, are imported). The zoo default stays
vit-pytorch's README example (tests/test_parity.py)."""
import pytest
import torch
from timm_oracle import TOLERANCE, count, difference, imported

import vitdsl
import vitdsl.interop.timm as vt
from vitdsl.interop.timm import mobilevit

timm = pytest.importorskip("timm")

PARAMS = {"mobilevit_xxs": 1_272_024, "mobilevit_xs": 2_317_848, "mobilevit_s": 5_578_632}


def test_the_family_covers_every_mobilevit_timm_registers():
    assert sorted(mobilevit.MODELS) == sorted(timm.list_models("mobilevit_*")) == sorted(PARAMS)
    assert vt.variants()["mobilevit"] == {"s": ["mobilevit_s"], "xs": ["mobilevit_xs"], "xxs": ["mobilevit_xxs"]}


@pytest.mark.parametrize("name", sorted(PARAMS))
def test_parameter_count_and_input_size_equal_timms(name):
    with torch.device("meta"):
        ref = timm.create_model(name, pretrained=False)
    assert count(vt.build(name, device="meta")) == count(ref) == PARAMS[name]
    t = vt.target(name)
    assert vitdsl.validate(t.blueprint, t.variant).input.dims == tuple(ref.pretrained_cfg["input_size"])


@pytest.mark.parametrize("name", ["mobilevit_xxs", "mobilevit_xs"])
def test_exact_outputs(name):
    assert difference(name, batch=2) < TOLERANCE


def test_a_wrong_unfold_shows():
    """The paper's unfold: tokens at the same offset of every 2×2 patch attend to each other. Making the tokens
    of one quarter of the map attend to each other instead (windows of the same size) shows in the first
    MobileViT block's output and, weakly (random weights of std 0.2 keep the attention near uniform), still
    above the tolerance in the logits."""
    ref, model, x = imported("mobilevit_xxs")
    outs = {}
    ref.stages[2].register_forward_hook(lambda m, i, o: outs.__setitem__("timm", o))
    model.get_submodule("trunk.0.fuse").register_forward_hook(lambda m, i, o: outs.__setitem__("ours", o))
    with torch.no_grad():
        want = ref(x)
        assert (model(x) - want).abs().max() < TOLERANCE
        assert (outs["ours"] - outs["timm"]).abs().max() < TOLERANCE
        for path, module in model.named_modules():
            if path.endswith(".attn") and hasattr(module, "partition"):
                module.partition = "block"
        logits = (model(x) - want).abs().max()
    assert (outs["ours"] - outs["timm"]).abs().max() > 100 * TOLERANCE
    assert logits > 5 * TOLERANCE


def test_the_vit_pytorch_default_keeps_its_own_block():
    """Without the paper's LayerNorm after the transformer, with BatchNorm and SiLU after the 1×1 conv, the
    attention branch first in the concatenation and a bias-free classifier (tests/test_parity.py: its outputs)."""
    default, paper = vitdsl.validate("mobilevit"), vitdsl.validate("mobilevit", "xs")
    paths = lambda g: {node.path for node, _, _ in g}  # noqa: E731
    assert paths(paper) - paths(default) == {"trunk.0.norm", "trunk.1.norm", "trunk.2.norm"}
    built = vitdsl.build("mobilevit", device="meta")
    keys = set(built.state_dict())
    assert "trunk.0.local.1.norm.weight" in keys and "head.fc.bias" not in keys
    keys = set(vitdsl.build("mobilevit", "xs", device="meta").state_dict())
    assert "trunk.0.local.1.norm.weight" not in keys and "head.fc.bias" in keys
