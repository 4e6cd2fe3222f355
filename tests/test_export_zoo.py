"""Every zoo blueprint, at the small sizes of tests/zoo_small.py, compiles to one graph with no break,
exports with a dynamic batch (the program matches eager at the traced batch and at another), and the
exported program converts to ONNX (the dynamo exporter) that onnxruntime runs to eager's numbers."""
from __future__ import annotations

import pytest
import torch
import zoo_small
from onnx_runtime import onnx_run, onnx_session
from torch.utils._pytree import tree_leaves

NAMES = sorted(zoo_small.SMALL)
# exported, adaptive token sampling pads the tokens it keeps to its budget (static shapes) where eager keeps the
# batch's widest: its token ids differ in width by design, and tests/test_export_masks.py compares them so
EXPORTED_ELSEWHERE = {"ats_vit"}
# torch.export copies its own pytree specs through a deprecated check of torch's (2.13); nothing of ours
pytestmark = pytest.mark.filterwarnings("ignore:`isinstance(treespec, LeafSpec)` is deprecated:FutureWarning")


def small(name: str, batch: int = 2):
    torch.manual_seed(0)
    model = zoo_small.build(name)
    return model, torch.randn(batch, *model.input_shape)


def outputs(value) -> list[torch.Tensor]:
    """Every tensor a model returns (a tuple for the two-headed distillation models), in order."""
    return [torch.as_tensor(t) for t in tree_leaves(value)]


def max_diff(got, expected) -> float:
    got, expected = outputs(got), outputs(expected)
    assert [t.shape for t in got] == [t.shape for t in expected]
    return max((g - e).abs().max().item() for g, e in zip(got, expected))


def export(model, x):
    batch = torch.export.Dim("batch", min=1, max=1024)
    return torch.export.export(model, (x,), dynamic_shapes=({0: batch},))


def test_the_table_has_one_entry_per_blueprint_file():
    assert NAMES == zoo_small.files()


@pytest.mark.parametrize("name", NAMES)
def test_compiles_to_one_graph(name):
    model, x = small(name)
    explanation = torch._dynamo.explain(model)(x)
    assert explanation.graph_break_count == 0, explanation.break_reasons
    assert explanation.graph_count == 1


@pytest.mark.parametrize("name", sorted(set(NAMES) - EXPORTED_ELSEWHERE))
def test_exports_with_a_dynamic_batch_and_to_onnx(name, torchlib_once):
    model, x = small(name)
    other = torch.randn(3, *model.input_shape)
    program = export(model, x)
    with torch.no_grad():
        expected = [model(x), model(other)]
        for inp, want in zip((x, other), expected):
            assert max_diff(program.module()(inp), want) <= 1e-5
    session = onnx_session(program)
    for inp, want in zip((x, other), expected):
        got = onnx_run(session, inp)
        assert max_diff(got, want) <= 1e-4
