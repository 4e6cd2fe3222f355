"""The compiled plan computes only the rows that are read: with ``pool: cls`` at the end, the last attention
gives the class token's row alone (``Network.skip_unread_tokens``) — the same outputs and gradients as every
row, for every zoo file it applies to, and every row again where hooks and probes look."""
from __future__ import annotations

import pytest
import torch
import zoo_small
from torch.utils._python_dispatch import TorchDispatchMode

import vitdsl

# (step of the last attention, rows) for each small zoo model whose plan cuts; the others keep every row
CUTS = {
    "deepvit": ("blocks.0.attn", 1),
    "deit3": ("blocks.0.attn", 1),
    "dinov2": ("blocks.0.attn", 1),
    "efficient_vit": ("transformer.0.layers.0.attn", 1),
    "examples/vivit_maxvit": ("temporal.0.attn", 1),
    "pit": ("stages.1.blocks.0.attn", 1),
    "rope_vit": ("blocks.0.attn", 1),
    "t2t_vit": ("blocks.0.attn", 1),
    "vit": ("blocks.0.attn", 1),
    "vit_3d": ("blocks.0.attn", 1),
    "vivit": ("enc.1.blocks.0.attn", 1),
}


def cut_of(model) -> tuple[str, int] | None:
    cut = model._cut
    return None if cut is None else (".".join(model.chain[cut[0]]), cut[1])


@pytest.fixture(scope="module")
def plans() -> dict[str, tuple[str, int] | None]:
    return {name: cut_of(zoo_small.build(name)) for name in zoo_small.files()}


def test_which_zoo_files_cut(plans):
    assert {name: cut for name, cut in plans.items() if cut is not None} == CUTS


@pytest.mark.parametrize("name", sorted(CUTS))
def test_same_outputs_and_gradients(name):
    torch.manual_seed(0)
    model = zoo_small.build(name)
    x = torch.randn(2, *model.input_shape)
    with torch.no_grad():
        fast = model(x)
        model.skip_unread_tokens = False
        full = model(x)
    assert (fast - full).abs().max().item() <= 1e-5
    model.train()
    if not model._cut[2]:  # dropout in the cut part: training computes every row
        return
    grads = []
    for skip in (True, False):
        model.skip_unread_tokens = skip
        model.zero_grad()
        torch.manual_seed(1)
        model(x).square().sum().backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys()
    for n, g in grads[1].items():
        assert (grads[0][n] - g).abs().max().item() <= 1e-5 * max(1.0, g.abs().max().item()), n


class MatmulWork(TorchDispatchMode):
    """Multiply-adds of the matrix products run (no module hooks: those would turn the cut off)."""

    def __init__(self):
        super().__init__()
        self.macs = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if func in (torch.ops.aten.mm.default, torch.ops.aten.addmm.default):
            a, b = args[-2], args[-1]
            self.macs += a.shape[0] * a.shape[1] * b.shape[1]
        return out


def test_the_cut_saves_the_rows_and_hooks_see_every_row():
    model = zoo_small.build("vit")  # 16 patches + cls, width 32, heads 2 × 16, mlp 64, one block
    x = torch.randn(2, *model.input_shape)
    work = []
    for skip in (True, False):
        model.skip_unread_tokens = skip
        with torch.no_grad(), MatmulWork() as mode:
            model(x)
        work.append(mode.macs)
    # 16 rows fewer, per image: the queries (32 → 32), the projection (32 → 32), the mlp (32 → 64 → 32)
    assert work[1] - work[0] == 2 * 16 * (32 * 32 + 32 * 32 + 32 * 64 + 64 * 32)
    model.skip_unread_tokens = True
    seen = []
    handle = model.block("blocks.0.ff").register_forward_hook(lambda m, a, out: seen.append(out.shape[1]))
    with MatmulWork() as mode:
        model(x)
    handle.remove()
    assert seen == [17] and mode.macs == work[1]  # a watched call computes every row
    _, cap = vitdsl.probe(model, x)
    assert tuple(cap.attention["blocks.0.attn"].shape) == (2, 2, 17, 17)
    assert model.skip_unread_tokens is True


def test_dropout_keeps_training_on_every_row():
    model = zoo_small.build("vit")  # vit-pytorch's dropout 0.1
    assert model._cut[2] is False
    x = torch.randn(2, *model.input_shape)
    work = []
    for training in (True, False):
        with MatmulWork() as mode:
            model.train(training)(x)
        work.append(mode.macs)
    assert work[0] > work[1]


@pytest.mark.parametrize("change, why", [
    ({"pool": "mean"}, "every row is read"),
    ({"ff_norm": "batch"}, "batch statistics mix the rows"),
])
def test_no_cut(change, why):
    text = """
name: cls_or_not
input: {image: [3, 16, 16]}
params: {pool: cls, ff_norm: layer}
layers:
  - patchify: {patch: 8, dim: 16}
  - tokens: {cls: 1}
  - global-attn: {heads: 2}
  - mlp: {hidden: 32, norm_type: $ff_norm}
  - pool: $pool
  - head: {classes: 3}
"""
    blueprint = vitdsl.loads(text)
    assert vitdsl.build(blueprint)._cut is not None
    assert vitdsl.build(blueprint, overrides=change)._cut is None, why


def test_a_replaced_last_attention_runs_on_every_row():
    model = zoo_small.build("vit")
    x = torch.randn(2, *model.input_shape)
    with torch.no_grad():
        before = model(x)
        inner = model.blocks[0].attn
        model.blocks[0].attn = torch.nn.Sequential(inner)  # takes no rows=
        assert torch.allclose(model(x), before, atol=1e-6)
