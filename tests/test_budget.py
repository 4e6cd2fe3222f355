"""``budget:`` in a blueprint: validate and build refuse a design over its limits, from the shape rules, with
each stage's share; the per-stage costs add up to the whole."""
import pytest

import vitdsl
from vitdsl.blueprint.budget import count
from vitdsl.errors import VitdslError
from vitdsl.graph.build import info
from vitdsl.graph.costs import stage_costs


def refusal(write, text: str, variant=None) -> VitdslError:
    with pytest.raises(VitdslError) as e:
        vitdsl.validate(str(write(text)), variant)
    return e.value


def test_over_params_max_names_each_stages_share(write):
    e = refusal(write, "extends: vit.yaml\nbudget: {params_max: 30M, gflops_max: 5}\n")
    assert e.message == "54,630,376 parameters exceed the budget's params_max 30,000,000"
    assert e.hint == "per stage: patchify 3.15M · blocks ×6 50.38M · head 1.02M (+4 under 1%)"
    assert (e.location.line, e.location.col) == (2, 22)


def test_flops_and_macs_at_another_size(write):
    e = refusal(write, "extends: swin.yaml\nbudget: {gmacs_max: 4, at: 448}\n", "tiny")
    assert e.message == "18 GMACs at 448×448 exceed the budget's gmacs_max 4"
    assert e.hint == "per stage (GMACs): stages.0 3.01 · stages.1 3.12 · stages.2 8.73 · stages.3 3.04 (+4 under 1%)"
    e = refusal(write, "extends: swin.yaml\nbudget: {gflops_max: 8}\n", "tiny")
    assert e.message == "8.98 GFLOPs exceed the budget's gflops_max 8"  # Swin-T: 4.5 GMACs at 224, as timm says
    # a size the layers cannot take is refused at the layer, saying it is the budget's size
    e = refusal(write, "extends: swin.yaml\nbudget: {gmacs_max: 40, at: 384}\n", "tiny")
    assert e.message.startswith("budget at 384×384: window 7 does not divide the feature map 96×96")


def test_within_budget_builds(write):
    path = write("extends: simple_vit.yaml\nparams: {depth: 1, dim: 64, mlp_dim: 128, heads: 2}\n"
                 "budget: {params_max: 1.5M, gmacs_max: 0.1, at: [256, 128]}\n")
    graph = vitdsl.validate(str(path))
    assert info(graph)["params"] < 1_500_000
    assert vitdsl.build(str(path), device="meta").input_shape == (3, 256, 256)  # `at` only counts


@pytest.mark.parametrize("text,message", [
    ("budget: {params_max: 3.5Q}", "'budget.params_max': takes a number such as 30M, 1.5B or 30000000, not '3.5Q'"),
    ("budget: {params_max: 0}", "'budget.params_max': must be a positive count below 2**63, not 0"),
    ("budget: {gflops: 5}", "unknown key 'gflops' in 'budget'"),
])
def test_a_wrong_budget_is_located(write, text, message):
    e = refusal(write, f"extends: simple_vit.yaml\n{text}\n")
    assert e.message.startswith(message) and e.location.line == 2


def test_counts_take_suffixes():
    assert [count(v) for v in ("30M", "1.5B", "300k", "2G", 7, "12")] == [30_000_000, 1_500_000_000, 300_000,
                                                                          2_000_000_000, 7, 12]


@pytest.mark.parametrize("name,variant", [("vit", None), ("cait", None), ("swin", "tiny"), ("cross_vit", None)])
def test_stage_costs_add_up_to_the_whole(name, variant):
    graph = vitdsl.validate(name, variant)
    stages = stage_costs(graph)
    assert sum(s.params for s in stages) == info(graph)["params"]
    assert sum(s.flops for s in stages) == info(graph)["flops"]
    assert sum(s.blocks for s in stages) == len(graph.order)
