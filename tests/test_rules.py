"""Each block's shape, parameter and FLOP rules (pure Python, used by `vitdsl validate`) agree with
its real module traced on the meta device, for every block of every zoo blueprint and variant."""
from pathlib import Path

import networkx as nx
import pytest
import torch
from rules_check import assert_graph_agrees

import vitdsl
from vitdsl.blueprint.load import load, zoo_names

EXAMPLES = sorted(str(p) for p in (Path(__file__).parents[1] / "blueprints" / "examples").glob("*.yaml"))
CASES = ([(name, None) for name in zoo_names()] + [(name, v) for name in zoo_names() for v in load(name).variants]
         + [(path, None) for path in EXAMPLES])


@pytest.mark.parametrize("name,variant", CASES)
def test_rules_agree_with_modules(name, variant):
    assert_graph_agrees(vitdsl.validate(name, variant))


@pytest.mark.parametrize("name", zoo_names())
def test_summary_shapes_equal_a_real_forward_pass(name):
    model = vitdsl.build(name).eval()
    seen = {}
    def note(path, out):  # a block that gives extras returns (tokens, extras)
        seen[path] = tuple((out[0] if isinstance(out, tuple) else out).shape[1:])

    hooks = [model.block(p).register_forward_hook(lambda m, i, o, p=p: note(p, o)) for p in model.paths]
    with torch.no_grad():
        model(torch.randn(1, *model.input_shape))
    for h in hooks:
        h.remove()
    summary = vitdsl.summary(model)
    # after a block whose token count depends on the data, the summary's sizes are upper bounds
    graph = vitdsl.validate(name)
    bounded = {d for node, _, _ in graph if node.spec.data_dependent()
               for d in {node.path} | nx.descendants(graph.nx, node.path)}
    assert {r.path for r in summary.rows} == set(seen)
    for r in summary.rows:
        if r.path in bounded:
            assert len(r.output) == len(seen[r.path]) and all(a <= b for a, b in zip(seen[r.path], r.output)), r.path
        else:
            assert r.output == seen[r.path], r.path
    assert summary.total_params == sum(p.numel() for p in model.parameters())


def test_summary_flops_total_equals_the_rules():
    summary = vitdsl.summary("maxvit")
    assert summary.total_flops == vitdsl.graph.info(vitdsl.validate("maxvit"))["flops"] == 23_056_035_840
