"""The hybrids in blueprints/examples/: blocks from different papers mixed in one blueprint. Each must
build, run forward and backward, and give every parameter a gradient (a block cut off from the loss
would keep none)."""
from pathlib import Path

import pytest
import torch

import vitdsl

EXAMPLES = sorted((Path(__file__).parents[1] / "blueprints" / "examples").glob("*.yaml"))
SMALL = {  # small enough for CPU, and no 1×1 windows (a lone key's bias gets no gradient)
    "maxvit_cait": {"image_size": 64, "dims": [16, 32, 64, 64], "depths": [1, 1, 2, 1], "stem": 16,
                    "window": 2, "dim_head": 8, "cls_heads": 2, "classes": 10},
    "twins_crossformer": {"image_size": 64, "dims": [32, 32, 64, 64], "depths": [1, 1, 2, 1],
                          "windows": [4, 2, 2, 2], "reductions": [4, 2, 2, 1], "dim_head": 16, "classes": 10},
    "vivit_maxvit": {"image_size": 32, "frames": 3, "stem": 16, "dims": [16, 32], "depths": [1, 1],
                     "window": 2, "dim_head": 8, "temporal_depth": 2, "heads": 2, "classes": 10},
}


def test_every_example_has_a_small_size():
    assert {p.stem for p in EXAMPLES} == set(SMALL)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_example_trains(path):
    torch.manual_seed(0)
    model = vitdsl.build(path, overrides=SMALL[path.stem]).train()
    x = torch.randn(2, *model.input_shape)
    out = model(x)
    assert out.shape == (2, *model.output_shape)
    out.square().mean().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert all(p.requires_grad for p in model.parameters())
    assert not missing, f"parameters without a gradient: {missing}"
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())
    summary = vitdsl.summary(path, overrides=SMALL[path.stem])
    assert summary.total_params == sum(p.numel() for p in model.parameters())
