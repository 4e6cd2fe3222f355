"""The ONNX checks' shared parts (a pytest plugin, see conftest.py): an exported program through the dynamo
ONNX exporter into an onnxruntime session, and the exporter's function table built once per worker."""
from __future__ import annotations

import contextlib
import functools
import io

import pytest
import torch


@pytest.fixture(scope="session")
def torchlib_once():
    """The exporter rebuilds its table of ATen → ONNX functions on every call, parsing the source of each
    (about a second of the few a small model takes); no export of ours changes the table, so build it once.
    Without the private function (another torch), every export builds its own, as it would anyway."""
    from torch.onnx._internal.exporter import _registration

    registry = getattr(_registration, "ONNXRegistry", None)
    if registry is None or "from_torchlib" not in vars(registry):
        yield
        return
    build = functools.cache(registry.from_torchlib)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(registry, "from_torchlib", staticmethod(lambda **opset: build(**opset)))
        yield


def onnx_session(program: torch.export.ExportedProgram):
    """onnxruntime's session (one thread) on the program's ONNX model. The exporter reports its steps on
    stdout; its optional graph optimizer (onnxscript's rewrites, a sixth of the time) is left out: what is
    checked is that every operation has an ONNX translation that computes the same."""
    import onnxruntime

    aten = torch.ops.aten
    if any(node.target == aten.conv3d.default for node in program.graph.nodes):
        program = program.run_decompositions({aten.conv3d.default: _conv3d})
    with contextlib.redirect_stdout(io.StringIO()):
        model = torch.onnx.export(program, dynamo=True, verbose=False, optimize=False)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    return onnxruntime.InferenceSession(model.model_proto.SerializeToString(), options,
                                        providers=["CPUExecutionProvider"])


def onnx_run(session, *args: torch.Tensor) -> list[torch.Tensor]:
    """The session's outputs on ``args`` (the program's inputs, in order)."""
    feed = {i.name: a.numpy() for i, a in zip(session.get_inputs(), args)}
    return [torch.from_numpy(o) for o in session.run(None, feed)]


def _conv3d(x, weight, bias=None, stride=(1, 1, 1), padding=(0, 0, 0), dilation=(1, 1, 1), groups=1):
    """conv3d as aten.convolution: onnxscript 0.7's translation of a conv3d without bias makes a (C, 2)
    zero bias that onnxruntime refuses (CCT-3D's tokenizer has none); convolution's translation is right."""
    return torch.ops.aten.convolution(x, weight, bias, stride, padding, dilation, False, [0, 0, 0], groups)
