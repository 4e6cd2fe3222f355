"""FSDP sees the module tree: two processes on CPU (gloo) wrap the attention blocks by type, and the
wrapped model computes the same loss and the same gradients as the unwrapped one. Before the Network ran
its tree, auto-wrapping moved the blocks' parameters out from under references captured at build time
and the first forward failed with "data is not allocated yet"."""
from pathlib import Path

import torch
from torch.distributed.fsdp import FullyShardedDataParallel as FSDP
from torch.distributed.fsdp.wrap import ModuleWrapPolicy
from two_processes import on_two_processes

import vitdsl

VIT = {"image_size": 32, "patch": 8, "dim": 32, "depth": 2, "heads": 2, "dim_head": 16, "mlp": 64,
       "dropout": 0.0, "emb_dropout": 0.0}


def shard_and_compare(rank: int) -> tuple:
    """One of two processes (tests/two_processes.py): FSDP units, loss and worst gradient difference."""
    model = vitdsl.build("vit", overrides=VIT, seed=0)
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    expected = model(x).square().sum()
    expected.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    block = type(model.block("blocks.0.attn"))
    sharded = FSDP(model, auto_wrap_policy=ModuleWrapPolicy({block}), device_id=torch.device("cpu"),
                   use_orig_params=True)
    units = sum(isinstance(m, FSDP) for m in sharded.modules())
    loss = sharded(x).square().sum()
    loss.backward()
    with FSDP.summon_full_params(sharded, with_grads=True):
        worst = max((p.grad - grads[n.replace("_fsdp_wrapped_module.", "")]).abs().max().item()
                    for n, p in sharded.named_parameters())
    return units, abs(loss.item() - expected.item()), worst


def test_fsdp_auto_wrap_by_block_type_trains_the_same(tmp_path: Path):
    for units, loss_diff, grad_diff in on_two_processes(shard_and_compare, tmp_path):
        assert units == 3  # the root and one unit per attention block
        assert loss_diff <= 1e-4 and grad_diff <= 1e-5, (loss_diff, grad_diff)
