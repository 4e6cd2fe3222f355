"""The zoo is real: each README example has vit-pytorch's exact parameter count and, after weight
import, every output it returns. A blueprint that lost or gained a block fails here."""
import pytest
import torch
from references import BY_ID, CASES

import vitdsl
from vitdsl.blueprint.load import load, zoo_names
from vitdsl.interop.vit_pytorch import import_weights, reference_name

IDS = [c.id for c in CASES]


def build(case):
    return vitdsl.build(case.blueprint, case.variant, case.overrides, compat=case.compat)


def flat(out):
    if isinstance(out, (tuple, list)):
        return [t for o in out for t in flat(o)]
    return [out]


@pytest.mark.parametrize("cid", IDS)
def test_parameter_count_is_exact(cid):
    case = BY_ID[cid]
    ref = case.make()
    model = build(case)
    expected = sum(p.numel() for p in ref.parameters())
    if case.params is not None:
        assert expected == case.params
    assert sum(p.numel() for p in model.parameters()) == expected
    assert vitdsl.summary(case.blueprint, case.variant, case.overrides, compat=case.compat).total_params == expected


@pytest.mark.parametrize("cid", IDS)
def test_outputs_match_after_weight_import(cid):
    case = BY_ID[cid]
    torch.manual_seed(0)
    ref = case.make().eval()
    model = build(case).eval()
    mapping = import_weights(model, ref)
    # every distinct tensor filled (keys of tied weights, `share:`, hold one tensor)
    assert len(set(mapping.values())) == len({id(t) for t in model.state_dict(keep_vars=True).values()})
    x = torch.randn(case.batch, *model.input_shape)
    expected, got = flat(case.forward(ref, x, ours=False)), flat(case.forward(model, x, ours=True))
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        assert g.shape == e.shape
        assert g.dtype == e.dtype
        assert (g.double() - e.double()).abs().max().item() <= 1e-5


@pytest.mark.parametrize("name", zoo_names())
def test_every_claimed_reference_is_tested(name):
    """The README's zoo table says 'exact' from the blueprint's `reference`; hold it to that."""
    claim = load(name).reference
    tested = {reference_name(c.make()) for c in CASES if c.blueprint == name and c.variant is None}
    if claim is None:
        assert not tested, f"{name} is tested against {tested}: set its `reference`"
    else:
        assert tested == {claim}


def test_import_refuses_a_different_architecture():
    ref = BY_ID["vit"].make()
    model = vitdsl.build("vit", overrides={"depth": 5})
    with pytest.raises(vitdsl.VitdslError) as e:
        import_weights(model, ref)
    assert "maps to 'blocks.5.attn.norm.weight', which the blueprint does not have" in str(e.value)


def test_import_refuses_wrong_shapes():
    ref = BY_ID["vit"].make()
    model = vitdsl.build("vit", overrides={"mlp": 1024})
    with pytest.raises(vitdsl.VitdslError) as e:
        import_weights(model, ref)
    assert "'transformer.layers.0.1.net.1.weight' (2048, 1024) does not fit 'blocks.0.ff.fc1.weight' (1024, 1024)" \
        in str(e.value)


def test_import_needs_a_known_reference():
    with pytest.raises(vitdsl.VitdslError,
                       match="no weight map for vit-pytorch class 'torch.nn.modules.linear.Linear'"):
        import_weights(vitdsl.build("vit"), torch.nn.Linear(2, 2))
