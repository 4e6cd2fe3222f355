"""Sharding a built model along its blueprint: the units FSDP2 wraps are the innermost repeat iterations
(a transformer block, a Swin stage's block), the same units ``set_grad_checkpointing`` recomputes, so a
model shards and checkpoints at the same seams without naming any module type. torch.distributed is
imported only when ``shard`` runs."""
from __future__ import annotations

from typing import Any

from .errors import VitdslError


def _network(model: Any, what: str):
    from .graph.network import Network

    if not isinstance(model, Network):
        raise VitdslError(f"{what} needs a model vitdsl.build made, got {type(model).__name__}",
                          hint="the blueprint says where the repeat iterations are; build the model with vitdsl")
    return model


def _blocks(model: Any, what: str) -> dict[str, list[str]]:
    """Each innermost repeat iteration's path, in the order they run, with the paths of its blocks."""
    out: dict[str, list[str]] = {}
    for node, _, _ in _network(model, what).graph:
        if node.repeats:
            where, k = node.repeats[-1]
            out.setdefault(f"{where}.{k}", []).append(node.path)
    return out


def units(model: Any) -> list[str]:
    """The module paths of the model's innermost repeat iterations, in the order they run (``['blocks.0',
    'blocks.1', ...]`` for a ViT); empty for a blueprint without repeats."""
    return list(_blocks(model, "units"))


def shard(model: Any, **fully_shard_args: Any):
    """``fully_shard`` (FSDP2) on the blocks of each unit of ``units(model)``, one group a unit, and then on
    the model itself, which keeps what lies outside the repeats (stem, head). ``fully_shard_args`` go to
    every call; without a ``mesh`` one is made over all ranks on the device type of the model's parameters
    (torch's default takes CUDA whenever it is present). Needs an initialised process group; returns the
    model, sharded in place."""
    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    groups = _blocks(model, "shard")
    if not dist.is_initialized():
        raise VitdslError("shard needs torch.distributed initialised",
                          hint="call torch.distributed.init_process_group first (torchrun sets up its variables)")
    if "mesh" not in fully_shard_args:
        device = next(model.parameters()).device.type
        fully_shard_args["mesh"] = init_device_mesh(device, (dist.get_world_size(),))
    for paths in groups.values():
        # An iteration is a container the model never calls (it runs the blocks in it one by one), which
        # fully_shard refuses; its blocks, sharded as one group, gather their weights once per iteration.
        blocks = [model.get_submodule(p) for p in paths]
        blocks = [b for b in blocks if any(True for _ in b.parameters())]
        if blocks:
            fully_shard(blocks, **fully_shard_args)
    return fully_shard(model, **fully_shard_args)
