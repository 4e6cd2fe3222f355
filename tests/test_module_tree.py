"""The compiled Network runs the modules its tree holds at call time: a block replaced, wrapped for
activation checkpointing or hooked after the build is what runs, on the chain fast path and on the
general plan alike."""
import pytest
import torch
from torch import nn
from torch.distributed.algorithms._checkpoint.checkpoint_wrapper import (
    CheckpointWrapper,
    apply_activation_checkpointing,
)

import vitdsl

VIT = {"image_size": 32, "patch": 8, "dim": 32, "depth": 2, "heads": 2, "dim_head": 16, "mlp": 64}
BRANCHES = """\
name: branches
input: {tokens: [4, 16]}
layers:
  - mlp: {mult: 2}
    name: a
  - global-attn: {heads: 2, dim_head: 8}
    name: b
    from: a
  - mlp: {mult: 2}
    name: c
    from: a
  - merge: add
    from: [b, c]
"""


def models():
    vit = vitdsl.build("vit", overrides=VIT, seed=0).eval()
    branches = vitdsl.build(vitdsl.loads(BRANCHES, "branches.yaml"), seed=0).eval()
    assert vit.chain is not None and branches.chain is None  # both ways forward runs
    return [(vit, torch.randn(2, 3, 32, 32), "blocks.1.ff"), (branches, torch.randn(2, 4, 16), "c")]


class Doubled(nn.Module):
    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        return 2 * self.inner(x)


@pytest.mark.parametrize("case", range(2), ids=["chain", "plan"])
def test_a_replaced_block_is_what_runs(case):
    model, x, path = models()[case]
    with torch.no_grad():
        before = model(x)
        parent, name = model.block(path.rpartition(".")[0]) if "." in path else model, path.rpartition(".")[2]
        original = model.block(path)
        setattr(parent, name, Doubled(original))
        after = model(x)
        assert not torch.allclose(before, after)
        setattr(parent, name, original)
        assert torch.equal(model(x), before)


@pytest.mark.parametrize("case", range(2), ids=["chain", "plan"])
def test_activation_checkpointing_recomputes_the_wrapped_blocks(case):
    model, x, path = models()[case]
    model.skip_unread_tokens = False  # the run below is hooked, so computes every row: compare with the same
    expected = model(x).square().sum()
    expected.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    apply_activation_checkpointing(model, check_fn=lambda m: m is model.block(path))
    assert isinstance(model.block(path), CheckpointWrapper)
    calls = []
    model.block(path)._checkpoint_wrapped_module.register_forward_pre_hook(lambda *_: calls.append(1))
    loss = model(x).square().sum()
    assert len(calls) == 1
    loss.backward()
    assert len(calls) == 2  # run again in backward: its activations were not kept
    assert torch.allclose(loss, expected)
    for n, p in model.named_parameters():
        assert torch.allclose(p.grad, grads[n.replace("_checkpoint_wrapped_module.", "")], atol=1e-6), n


def test_hooks_on_a_replaced_block_fire():
    model, x, path = models()[0]
    model.block("blocks").get_submodule("1").ff = nn.Identity()
    seen = []
    model.block(path).register_forward_hook(lambda m, i, o: seen.append(o.shape))
    model(x)
    assert seen == [torch.Size([2, 17, 32])]
