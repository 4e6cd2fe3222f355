"""The compiled module is an ordinary nn.Module: readable state_dict, deepcopy, pickle, torch.compile
without graph breaks, torch.export; summaries of huge blueprints need no memory; validation needs
no torch."""
import copy
import io
import pickle
import subprocess
import sys
import time

import pytest
import torch

import vitdsl

SMALL = {"vit": {"image_size": 32, "patch": 8, "dim": 32, "depth": 2, "heads": 2, "dim_head": 16, "mlp": 64},
         "simple_vit": {"image_size": 32, "patch": 8, "dim": 32, "depth": 2, "heads": 2, "dim_head": 16, "mlp": 64},
         "maxvit": {"image_size": 56, "stem": 8, "dims": [8, 16], "depths": [1, 1], "dim_head": 4}}


def small(name):
    model = vitdsl.build(name, overrides=SMALL[name]).eval()
    return model, torch.randn(2, *model.input_shape)


def test_state_dict_keys_read_like_block_paths():
    keys = list(vitdsl.build("maxvit").state_dict())
    assert keys[:4] == ["stem.0.conv.weight", "stem.0.conv.bias", "stem.1.conv.weight", "stem.1.conv.bias"]
    assert "stages.2.blocks.3.block_attn.qkv.weight" in keys
    assert "stages.2.blocks.3.grid_attn.rel_pos_bias.weight" in keys
    assert "stages.0.blocks.0.mbconv.se.reduce.weight" in keys
    assert keys[-4:] == ["head.norm.weight", "head.norm.bias", "head.fc.weight", "head.fc.bias"]


@pytest.mark.parametrize("name", sorted(SMALL))
def test_deepcopy_and_pickle(name):
    model, x = small(name)
    with torch.no_grad():
        expected = model(x)
        for clone in (copy.deepcopy(model), pickle.loads(pickle.dumps(model))):
            assert torch.equal(clone(x), expected)
            # the copy runs its own modules: changing one leaves the original as it was
            first = next(p for p in clone.parameters() if p.dtype.is_floating_point)
            first.add_(1.0)
            assert not torch.equal(clone(x), expected) and torch.equal(model(x), expected)
    buf = io.BytesIO()
    torch.save(model, buf)
    buf.seek(0)
    with torch.no_grad():  # as expected was: without gradients biased attention takes SDPA's fused kernel
        assert torch.equal(torch.load(buf, weights_only=False)(x), expected)


@pytest.mark.parametrize("name", sorted(SMALL))
def test_torch_compile_has_no_graph_breaks(name):
    model, x = small(name)
    explanation = torch._dynamo.explain(model)(x)
    assert explanation.graph_break_count == 0
    assert explanation.graph_count == 1


def test_torch_compile_runs_and_matches():
    model, x = small("maxvit")
    compiled = torch.compile(model, backend="eager")
    with torch.no_grad():
        assert torch.allclose(compiled(x), model(x), atol=1e-6)


@pytest.mark.parametrize("name", sorted(SMALL))
def test_torch_export(name):
    model, x = small(name)
    program = torch.export.export(model, (x,))
    with torch.no_grad():
        assert torch.allclose(program.module()(x), model(x), atol=1e-6)


def test_twenty_billion_parameter_blueprint_summarises_in_seconds():
    overrides = {"image_size": 224, "patch": 14, "dim": 6144, "depth": 44, "heads": 48, "dim_head": 128,
                 "mlp": 24576, "dropout": 0.0, "emb_dropout": 0.0}
    start = time.perf_counter()
    summary = vitdsl.summary("vit", overrides=overrides)
    took = time.perf_counter() - start
    d, hidden, tokens = 6144, 24576, (224 // 14) ** 2 + 1
    layer = (2 * d + d * 3 * d + d * d + d) + (2 * d + d * hidden + hidden + hidden * d + d)
    expected = (2 * 588 + 588 * d + d + 2 * d) + d + tokens * d + 44 * layer + 2 * d + (d * 1000 + 1000)
    assert summary.total_params == expected == 19_945_410_688
    assert took < 15, f"took {took:.1f} s"
    assert "Total params: 19,945,410,688" in str(summary)


def test_learned_tables_draw_as_torch_randn_and_nothing_on_meta():
    from vitdsl.blocks.modules.common import randn

    torch.manual_seed(3)
    expected = torch.randn(4, 5) * 0.02
    torch.manual_seed(3)
    assert torch.equal(randn(4, 5, std=0.02), expected)
    # on meta no kernel runs: the generator is untouched (a meta randn would be a Python reference kernel)
    state = torch.get_rng_state()
    with torch.device("meta"):
        table = randn(4, 5, std=0.02)
    assert table.is_meta and table.shape == (4, 5) and torch.equal(torch.get_rng_state(), state)


def test_validate_does_not_import_torch():
    code = ("import sys, vitdsl; g = vitdsl.validate('maxvit'); "
            "from vitdsl.graph import info; print(info(g)['params'], 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["79981380", "False"]


def test_eval_is_deterministic_and_train_uses_dropout():
    model, x = small("vit")
    with torch.no_grad():
        assert torch.equal(model(x), model(x))
        model = vitdsl.build("vit", overrides={**SMALL["vit"], "dropout": 0.5}).train()
        assert not torch.equal(model(x), model(x))
