"""Every zoo blueprint, at the small sizes of tests/zoo_small.py, compiles to one graph with no break,
exports with a dynamic batch (the program matches eager at the traced batch and at another), and the
exported program converts to ONNX (the dynamo exporter) that onnxruntime runs to eager's numbers."""
from __future__ import annotations

import contextlib
import functools
import io

import pytest
import torch
import zoo_small
from torch.utils._pytree import tree_leaves

NAMES = sorted(zoo_small.SMALL)
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


@pytest.fixture(scope="module")
def torchlib_once():
    """The exporter rebuilds its table of ATen → ONNX functions on every call, parsing the source of each
    (about a second of the few each small model takes); no export changes the table, so build it once."""
    from torch.onnx._internal.exporter import _registration

    build = functools.cache(_registration.ONNXRegistry.from_torchlib)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_registration.ONNXRegistry, "from_torchlib", staticmethod(lambda **opset: build(**opset)))
        yield


def onnx_run(program, xs: list[torch.Tensor]) -> list[list[torch.Tensor]]:
    """The exported program through the dynamo ONNX exporter, run by onnxruntime on each input."""
    import onnxruntime

    # the exporter reports its steps on stdout; its optional graph optimizer (onnxscript's rewrites, a sixth
    # of the time) is left out: what is checked is that every operation of ours has an ONNX translation
    with contextlib.redirect_stdout(io.StringIO()):
        onnx_program = torch.onnx.export(program, dynamo=True, verbose=False, optimize=False)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    session = onnxruntime.InferenceSession(onnx_program.model_proto.SerializeToString(), options,
                                           providers=["CPUExecutionProvider"])
    (name,) = [i.name for i in session.get_inputs()]
    return [[torch.from_numpy(o) for o in session.run(None, {name: x.numpy()})] for x in xs]


def test_the_table_has_one_entry_per_blueprint_file():
    assert NAMES == zoo_small.files()


@pytest.mark.parametrize("name", NAMES)
def test_compiles_to_one_graph(name):
    model, x = small(name)
    explanation = torch._dynamo.explain(model)(x)
    assert explanation.graph_break_count == 0, explanation.break_reasons
    assert explanation.graph_count == 1


@pytest.mark.parametrize("name", NAMES)
def test_exports_with_a_dynamic_batch_and_to_onnx(name, torchlib_once):
    model, x = small(name)
    other = torch.randn(3, *model.input_shape)
    program = export(model, x)
    with torch.no_grad():
        expected = [model(x), model(other)]
        for inp, want in zip((x, other), expected):
            assert max_diff(program.module()(inp), want) <= 1e-5
    for got, want in zip(onnx_run(program, [x, other]), expected):
        assert max_diff(got, want) <= 1e-4
