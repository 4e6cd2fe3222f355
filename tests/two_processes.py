"""Two gloo processes on the CPU, for the distributed tests: each process runs ``work(rank)`` in an initialised
process group of two and its result (or its traceback, so that a child's error is not a silent timeout) comes
back to the test."""
import tempfile
import traceback

import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def _child(rank: int, init: str, results, work) -> None:
    try:
        torch.set_num_threads(1)
        dist.init_process_group("gloo", init_method=init, rank=rank, world_size=2)
        results.put((rank, work(rank)))
    except BaseException:
        results.put((rank, traceback.format_exc()))
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def on_two_processes(work, tmp_path, timeout: float = 120) -> list:
    """``work(rank)``'s results for ranks 0 and 1 (``work`` a module-level function: spawn pickles it)."""
    ctx = mp.get_context("spawn")
    results = ctx.Queue()
    init = "file://" + tempfile.mktemp(dir=tmp_path)
    procs = [ctx.Process(target=_child, args=(rank, init, results, work)) for rank in range(2)]
    for p in procs:
        p.start()
    got = sorted((results.get(timeout=timeout) for _ in procs), key=lambda r: r[0])
    for p in procs:
        p.join(30)
    for rank, result in got:
        assert not isinstance(result, str), f"rank {rank} failed:\n{result}"
    return [result for _, result in got]
