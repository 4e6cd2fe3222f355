"""The two models whose tokens carry extras (NaViT's packing, adaptive token sampling's padding) under
torch.export with a dynamic batch, the ONNX dynamo exporter with onnxruntime, and torch.compile without
graph breaks; and NaViT's packed lists, which stay eager."""
import pytest
import torch
from onnx_runtime import onnx_run, onnx_session

import vitdsl
from vitdsl.blocks.modules.attention.sampling import SamplingAttention

NAVIT = {"image_size": 32, "patch": 16, "dim": 32, "depth": 1, "heads": 2, "dim_head": 16, "mlp": 64, "classes": 10}
ATS = {"image_size": 16, "patch": 4, "dim": 32, "max_tokens": [8, 6], "heads": 2, "dim_head": 16, "mlp": 64,
       "classes": 10}


def hashed_noise(self, b, n, like):
    """Uniform draws that are a function of their (image, draw, token) index alone, in integer arithmetic:
    eager, exported and ONNX runs draw the same, whatever their widths."""
    i = (torch.arange(b, device=like.device)[:, None, None] * 7919
         + torch.arange(self.samples, device=like.device)[None, :, None] * 104729
         + torch.arange(n, device=like.device)[None, None, :] * 31)
    return ((i * 1103515245 + 12345) % 2**31).to(like.dtype) / 2**31


@pytest.fixture
def ats(monkeypatch):
    monkeypatch.setattr(SamplingAttention, "noise", hashed_noise)
    torch.manual_seed(0)
    return vitdsl.build("ats_vit", overrides=ATS).eval()


@pytest.fixture
def navit():
    torch.manual_seed(0)
    return vitdsl.build("navit", overrides=NAVIT).eval()


def exported(model, x):
    return torch.export.export(model, (x,), dynamic_shapes=({0: torch.export.Dim("batch", min=2)},))


def test_navit_exports_with_a_dynamic_batch_and_runs_in_onnxruntime(navit, torchlib_once):
    xs = [torch.randn(b, 3, 32, 32) for b in (2, 3)]
    program = exported(navit, xs[0])
    session = onnx_session(program)
    with torch.no_grad():
        for x in xs:
            eager = navit(x)
            assert (program.module()(x) - eager).abs().max() <= 1e-5
            (got,) = onnx_run(session, x)
            assert got.shape == (x.shape[0], 10) and (got - eager).abs().max() <= 1e-5


def test_ats_exports_with_a_dynamic_batch_padded_to_its_budget(ats, torchlib_once):
    xs = [torch.randn(b, 3, 16, 16) for b in (2, 3)]
    program = exported(ats, xs[0])
    session = onnx_session(program)
    widths = set()
    with torch.no_grad():
        for x in xs:
            logits, ids = ats(x)
            widths.add(ids.shape[1])
            for got, got_ids in (program.module()(x), onnx_run(session, x)):
                assert (got - logits).abs().max() <= 1e-5
                # the static budget: the 6 samples of the last sampling block, eager's width then -1s
                assert got_ids.shape == (x.shape[0], 6)
                assert torch.equal(got_ids[:, :ids.shape[1]], ids) and (got_ids[:, ids.shape[1]:] == -1).all()
    assert widths == {4}  # eager kept at most 4 of 6 after the second block: padding all the way through


def test_ats_keeps_the_widest_images_tokens_eagerly(ats):
    logits, ids = ats(torch.randn(5, 3, 16, 16))
    assert ids.shape[1] == max(int((row >= 0).sum()) for row in ids) < 6


@pytest.mark.parametrize("name", ["navit", "ats"])
def test_compiles_without_graph_breaks(name, request):
    model = request.getfixturevalue(name)
    size = NAVIT["image_size"] if name == "navit" else ATS["image_size"]
    torch._dynamo.reset()
    explained = torch._dynamo.explain(model)(torch.randn(2, 3, size, size))
    assert explained.graph_break_count == 0 and explained.graph_count == 1


def test_navit_packed_lists_are_per_image_and_compile_whole(navit):
    a, b, c = torch.randn(3, 32, 16), torch.randn(3, 16, 32), torch.randn(3, 32, 32)
    with torch.no_grad():
        packed = navit([[a, b], [c]])
        alone = torch.cat([navit([[a]]), navit([[b]]), navit([[c]])])
        assert packed.shape == (3, 10) and (packed - alone).abs().max() <= 1e-5
        torch._dynamo.reset()
        compiled = torch.compile(navit, fullgraph=True, backend="eager")  # a list: its shapes specialise
        assert (compiled([[a, b], [c]]) - packed).abs().max() <= 1e-5


def test_checkpointed_and_segment_runs_carry_the_packing(navit):
    batch = [[torch.randn(3, 32, 16), torch.randn(3, 16, 32)], [torch.randn(3, 32, 32)]]
    with torch.no_grad():
        want = navit(batch)
        assert torch.equal(navit.run(batch, "patchify", "head"), want)
    navit.set_grad_checkpointing()
    got = navit(batch)  # gradients on: each repeat iteration runs under torch.utils.checkpoint
    got.sum().backward()
    assert (got - want).abs().max() <= 1e-6 and navit.patchify.proj.weight.grad is not None
