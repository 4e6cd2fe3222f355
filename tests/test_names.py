"""Layer names that PyTorch or the compiled model already use are refused by validate, located."""
import pytest
import torch
from torch import nn

import vitdsl
from vitdsl import VitdslError
from vitdsl.blueprint.reserved import MODULE, MODULE_DICT, NETWORK

BP = "name: t\ninput: {tokens: [4, 8]}\nlayers:\n  - repeat: 1\n    layers:\n      - mlp: {}\n        name: NAME\n"


def public(names) -> set[str]:
    return {n for n in names if not n.startswith("_")}


def test_the_reserved_names_cover_the_torch_installed():
    assert public(dir(nn.Module)) | public(vars(nn.Module())) <= MODULE
    assert public(dir(nn.ModuleDict)) <= MODULE | MODULE_DICT
    net = vitdsl.build("vit", overrides={"depth": 1, "dim": 32, "heads": 1, "mlp": 32, "image_size": 32,
                                         "patch": 16}, device="meta")
    assert public(dir(type(net))) | public(vars(net)) <= MODULE | MODULE_DICT | NETWORK


@pytest.mark.parametrize("name,owner", [("training", "nn.Module"), ("forward", "nn.Module"),
                                        ("keys", "nn.ModuleDict"), ("steps", "the compiled model")])
def test_a_reserved_name_is_refused_at_any_depth(name, owner):
    for text in (BP.replace("NAME", name), BP.replace("NAME", "ok").replace("  - repeat", f"  - mlp: {{}}\n"
                                                                                      f"    name: {name}\n  - repeat")):
        with pytest.raises(VitdslError) as e:
            vitdsl.validate(vitdsl.loads(text, "bp.yaml"))
        assert e.value.message == (f"'{name}' cannot name a layer: '{name}' is an attribute of {owner}, so no layer "
                                   "can be called that")
        assert e.value.location.file == "bp.yaml" and e.value.location.line in (5, 7)


def test_names_starting_with_an_underscore_are_refused():
    with pytest.raises(VitdslError, match="name '_modules' is not a valid identifier"):
        vitdsl.validate(vitdsl.loads(BP.replace("NAME", "_modules"), "bp.yaml"))


def test_free_names_still_build():
    model = vitdsl.build(vitdsl.loads(BP.replace("NAME", "block_ff"), "bp.yaml"))
    assert model(torch.zeros(2, 4, 8)).shape == (2, 4, 8)
