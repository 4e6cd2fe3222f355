"""The zoo is real: each README example has vit-pytorch's exact parameter count and, after weight
import, its outputs."""
import pytest
import torch

import vitdsl
from references import PARAMS, README
from vitdsl.interop.vit_pytorch import import_weights


@pytest.mark.parametrize("name", sorted(README))
def test_parameter_count_is_exact(name):
    ref = README[name]()
    model = vitdsl.build(name)
    assert sum(p.numel() for p in ref.parameters()) == PARAMS[name]
    assert sum(p.numel() for p in model.parameters()) == PARAMS[name]
    assert vitdsl.summary(name).total_params == PARAMS[name]


@pytest.mark.parametrize("name", sorted(README))
def test_outputs_match_after_weight_import(name):
    torch.manual_seed(0)
    ref = README[name]().eval()
    model = vitdsl.build(name).eval()
    mapping = import_weights(model, ref)
    assert len(mapping) == len(ref.state_dict()) == len(model.state_dict())
    x = torch.randn(2, *model.input_shape)
    with torch.no_grad():
        expected, got = ref(x), model(x)
    assert got.shape == expected.shape == (2, 1000)
    assert (got - expected).abs().max().item() <= 1e-5


def test_import_refuses_a_different_architecture():
    ref = README["vit"]()
    model = vitdsl.build("vit", overrides={"depth": 5})
    with pytest.raises(vitdsl.VitdslError) as e:
        import_weights(model, ref)
    assert "maps to 'blocks.5.attn.norm.weight', which the blueprint does not have" in str(e.value)


def test_import_refuses_wrong_shapes():
    ref = README["vit"]()
    model = vitdsl.build("vit", overrides={"mlp": 1024})
    with pytest.raises(vitdsl.VitdslError) as e:
        import_weights(model, ref)
    assert "'transformer.layers.0.1.net.1.weight' (2048, 1024) does not fit 'blocks.0.ff.fc1.weight' (1024, 1024)" \
        in str(e.value)


def test_import_needs_a_known_reference():
    with pytest.raises(vitdsl.VitdslError, match="no weight map for vit-pytorch class 'torch.nn.modules.linear.Linear'"):
        import_weights(vitdsl.build("vit"), torch.nn.Linear(2, 2))
