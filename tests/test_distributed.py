"""Distributed and precision recipes on CPU: two gloo processes, each on half the batch, train a tiny ViT
three SGD steps under DDP and under FSDP2 (``vitdsl.distributed.shard``, with and without activation
checkpointing) and end with the parameters one process gets on the whole batch; ``units`` names the
blueprint's repeat iterations; bf16 autocast and channels_last inputs give what float32 and contiguous
inputs give."""
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from two_processes import on_two_processes

import vitdsl
import vitdsl.distributed as vd
from vitdsl import VitdslError

VIT = {"image_size": 32, "patch": 8, "dim": 32, "depth": 2, "heads": 2, "dim_head": 16, "mlp": 64,
       "dropout": 0.0, "emb_dropout": 0.0, "classes": 10}
BATCH = 4


def data() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.randn(BATCH, 3, 32, 32, generator=g), torch.randint(0, 10, (BATCH,), generator=g)


def train(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> None:
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    for _ in range(3):
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()  # a mean over the rank's half: DDP and FSDP average the halves
        opt.step()


def worst(params: dict[str, torch.Tensor], model: torch.nn.Module, prefix: str = "") -> float:
    full = {n.removeprefix(prefix): (p.full_tensor() if hasattr(p, "full_tensor") else p).detach()
            for n, p in model.named_parameters()}
    assert full.keys() == params.keys()
    return max((full[n] - p).abs().max().item() for n, p in params.items())


def train_three_ways(rank: int) -> tuple:
    """One of two processes (tests/two_processes.py): the parameters it ends with under DDP and under FSDP2,
    against one process trained on the whole batch."""
    x, y = data()
    half = slice(rank * BATCH // 2, (rank + 1) * BATCH // 2)
    alone = vitdsl.build("vit", overrides=VIT, seed=0)
    train(alone, x, y)
    expected = {n: p.detach() for n, p in alone.named_parameters()}
    moved = max((p.detach() - q).abs().max().item() for p, q in
                zip(vitdsl.build("vit", overrides=VIT, seed=0).parameters(), expected.values()))

    ddp = torch.nn.parallel.DistributedDataParallel(vitdsl.build("vit", overrides=VIT, seed=0))
    train(ddp, x[half], y[half])
    ddp_diff = worst(expected, ddp, "module.")

    model = vitdsl.build("vit", overrides=VIT, seed=0)
    vd.shard(model)
    fsdp = {n: m for n, m in model.named_modules() if type(m).__name__.startswith("FSDP")}
    groups = len({id(m._get_fsdp_state()) for m in fsdp.values()})
    sharded = (sorted(fsdp), groups)
    train(model, x[half], y[half])
    fsdp_diff = worst(expected, model)

    model = vitdsl.build("vit", overrides=VIT, seed=0)
    model.set_grad_checkpointing()  # recomputes each unit in backward, re-gathering its weights
    train(vd.shard(model), x[half], y[half])
    fsdp_diff = max(fsdp_diff, worst(expected, model))
    return moved, ddp_diff, fsdp_diff, sharded


def test_ddp_and_fsdp2_on_half_batches_match_one_process_on_the_whole(tmp_path: Path):
    for rank, (moved, ddp_diff, fsdp_diff, sharded) in enumerate(on_two_processes(train_three_ways, tmp_path)):
        assert moved > 1e-2  # training moved the weights, so agreeing is not vacuous
        assert ddp_diff <= 1e-5 and fsdp_diff <= 1e-5, (ddp_diff, fsdp_diff)
        # the root, and each iteration's blocks as one group (one all-gather a unit)
        assert sharded == (["", "blocks.0.attn", "blocks.0.ff", "blocks.1.attn", "blocks.1.ff"], 3)
        print(f"rank {rank}: DDP {ddp_diff:.2e}, FSDP2 {fsdp_diff:.2e}, training moved {moved:.2e}")


def test_units_are_the_innermost_repeat_iterations():
    assert vd.units(vitdsl.build("vit", device="meta")) == [f"blocks.{k}" for k in range(6)]
    assert vd.units(vitdsl.build("swin", device="meta")) == [
        f"stages.{s}.blocks.{k}" for s, depth in enumerate([2, 2, 6, 2]) for k in range(depth)]


def test_units_and_shard_refuse_a_model_vitdsl_did_not_build():
    for call in (vd.units, vd.shard):
        with pytest.raises(VitdslError) as e:
            call(torch.nn.Linear(2, 2))
        assert str(e.value) == (f"{call.__name__} needs a model vitdsl.build made, got Linear\n"
                                "  hint: the blueprint says where the repeat iterations are; build the model "
                                "with vitdsl")


def test_shard_needs_a_process_group():
    with pytest.raises(VitdslError, match="^shard needs torch.distributed initialised\n"):
        vd.shard(vitdsl.build("vit", overrides=VIT, seed=0))


def test_bf16_autocast_stays_near_float32():
    model = vitdsl.build("vit", overrides=VIT, seed=0).eval()
    x = data()[0]
    with torch.no_grad():
        exact = model(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = model(x)
    assert low.dtype == torch.bfloat16
    assert (low.float() - exact).abs().max().item() <= 0.02 * exact.abs().max().item()  # 0.47% here


def test_channels_last_input_gives_the_contiguous_output():
    small = {"image_size": 32, "dims": [8, 16, 32], "heads": [1, 2, 2], "depths": [1, 1, 1], "dim_head": 8,
             "classes": 10}
    model = vitdsl.build("cvt", overrides=small, seed=0).eval()
    x = data()[0]
    with torch.no_grad():
        plain = model(x)
        last = model.to(memory_format=torch.channels_last)(x.to(memory_format=torch.channels_last))
    assert (last - plain).abs().max().item() <= 1e-5
