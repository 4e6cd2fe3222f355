"""versus_timm.py's two sides, vitdsl and timm, each in a process of its own, driven in turn from the parent.

Why: in one process the two models share one glibc heap, and each side's allocations move the other's page
faults. With vitdsl's MLP slices on, timm's own Swin-T b8 forward in the same process went from 615-634 ms to
669-678 ms, and the same build read 0.89 of timm in one run and 1.05 in another. A user runs one model per
process; so does this benchmark. Only one side works at a time (the other waits on its pipe, idle), and each
times its own calls, so the pipe's latency is in no figure.

Both processes build timm's model from the same seed; the vitdsl side copies its weights into the blueprint
(``vitdsl.interop.timm``) and drops it, so both compute with the same tensors."""
from __future__ import annotations

import contextlib
import multiprocessing
import statistics
import sys
import time
import traceback

SIDES = ("vitdsl", "timm")
MEMORY_CALLS = 3  # per side and measure, after the timed rounds


class SideError(RuntimeError):
    """A side's process failed: its traceback, or that it died (killed for memory, say)."""


def _train_step(model, optimizer, x, y):
    import torch.nn.functional as F

    def step():
        F.cross_entropy(model(x), y).backward()
        optimizer.step()
        # freed here, not at the start of the next step: the memory probe's "before" holds no gradients
        optimizer.zero_grad(set_to_none=True)
    return step


def _first_call(task) -> tuple[float, int]:
    """A compiled task's first call (the compilation) timed from an empty inductor cache, and the graph breaks
    dynamo saw. Inductor's one-time start-up runs first on a toy function, so that it is in neither side's time;
    the cache is empty so that neither side reuses kernels compiled before (on disk, by an earlier run or the
    other side: the two generate the same C++ source, and in one shared cache timm, compiled second, looked
    2.7x faster to compile, EVA02-T 403 s / 149 s)."""
    import torch
    from torch._dynamo.utils import counters
    from torch._inductor.utils import fresh_cache

    with fresh_cache():
        torch.compile(lambda t: t.sin() + 1)(torch.ones(2))
    counters.clear()
    with fresh_cache():
        start = time.perf_counter()
        task()
        seconds = time.perf_counter() - start
    return seconds, sum(counters["graph_break"].values())


class _Worker:
    """One side's model and the tasks prepared on it, answering the parent's requests (``handle``)."""

    def __init__(self, side: str, name: str, threads: int, timm_keeps_heap: bool = False):
        import torch
        from common import import_references
        from probes import PeakRSS

        if side == "timm" and timm_keeps_heap:  # vitdsl's side keeps it as it builds its model (heap.py)
            from vitdsl.blocks.modules import heap

            heap.keep()
        timm, _ = import_references()
        torch.set_num_threads(threads)
        torch.manual_seed(0)
        # drop_path_rate=0: timm's Swin defaults to stochastic depth 0.1 (random, and no op of vitdsl's build)
        model = timm.create_model(name, pretrained=False, drop_path_rate=0.0)
        if side == "vitdsl":
            import vitdsl.interop.timm as vt

            ours = vt.build(name)
            vt.import_weights(ours, model)
            model = ours
        self.side, self.model, self.peak = side, model.eval(), PeakRSS()
        self.tasks: dict[str, tuple[object, bool]] = {}  # label: (call, under inference mode)
        self.optimizer = None

    def handle(self, op: str, *args):
        return getattr(self, "op_" + op.replace(" ", "_"))(*args)

    def op_pid(self):
        import os
        return os.getpid()

    def op_summary(self):
        import vitdsl

        summary = vitdsl.summary(self.model)
        return {"input": list(summary.input), "params": summary.total_params, "flops": summary.total_flops,
                "classes": summary.output[-1]}

    def op_levers(self, x, widest=None, train=None):
        from probes import levers, recomputing_blocks, sliced_mlps

        from vitdsl.blocks.modules import heap

        found = levers(self.model, x)
        found["heap_kept"] = int(heap.kept())  # the process's, not the model's: both sides say
        if self.side == "vitdsl":
            # at the training batch: whether an MLP slices depends on it
            blocks = recomputing_blocks(self.model, x if train is None else train)
            found.update(zip(("recomputing_blocks", "residual_blocks", "train_sliced_mlp_calls"), blocks))
            found["train_sliced_at_batch"] = (x if train is None else train).shape[0]
        if widest is not None:
            found.update(sliced_mlp_calls=sliced_mlps(self.model, widest), sliced_at_batch=widest.shape[0])
        return found

    def op_forward(self, x, train: bool):
        import torch

        with torch.no_grad():
            return self.model.train(train)(x)

    def op_eval(self, label, x):
        self.model.eval()
        self.tasks[label] = (lambda: self.model(x)), True

    def op_compiled_eval(self, label, x):
        import torch

        self.model.eval()
        compiled = torch.compile(self.model)
        self.tasks[label] = (lambda: compiled(x)), True
        with torch.inference_mode():
            seconds, breaks = _first_call(self.tasks[label][0])
            drift = (compiled(x) - self.model(x)).abs().max().item()
        return {"compile_s": seconds, "graph_breaks": breaks, "max_abs_diff_from_eager": drift}

    def _optimizer(self):
        import torch

        if self.optimizer is None:
            self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=1e-4)
        return self.optimizer

    def op_train(self, label, x, y):
        self.tasks[label] = _train_step(self.model.train(), self._optimizer(), x, y), False

    def op_compiled_train(self, label, x, y):
        import torch

        self.model.train()
        self.tasks[label] = _train_step(torch.compile(self.model), self._optimizer(), x, y), False
        seconds, breaks = _first_call(self.tasks[label][0])
        return {"compile_s": seconds, "graph_breaks": breaks}

    def op_laps(self, label: str, calls: int, memory: bool = False):
        """Seconds of each of ``calls`` calls of a prepared task; with ``memory``, also each call's peak RSS
        above the RSS before it (probes.PeakRSS), or None where this machine cannot tell."""
        import torch

        call, inference = self.tasks[label]
        probe = self.peak if memory and self.peak.reason is None else None
        laps, peaks = [], []
        with torch.inference_mode() if inference else contextlib.nullcontext():
            for _ in range(calls):
                if probe is not None:
                    probe.before(label)
                start = time.perf_counter()
                call()
                laps.append(time.perf_counter() - start)
                if probe is not None:
                    probe.after(label)
                    peaks.append(probe.peaks[label].pop())
        return laps, (peaks if probe is not None else None)

    def op_memory_reason(self):
        return self.peak.reason


def _serve(conn, side: str, name: str, threads: int, timm_keeps_heap: bool = False) -> None:
    try:
        worker = _Worker(side, name, threads, timm_keeps_heap)
        conn.send(("ok", None))
    except BaseException:  # noqa: BLE001 - the parent reports it; this process then ends
        conn.send(("error", traceback.format_exc()))
        return
    while True:
        request = conn.recv()
        if request is None:
            return
        try:
            conn.send(("ok", worker.handle(*request)))
        except BaseException:  # noqa: BLE001
            conn.send(("error", traceback.format_exc()))


class Sides:
    """The two sides of one model, each in its own process (spawned: a fresh interpreter, nothing inherited);
    a context manager that ends them. ``timm_keeps_heap``: timm's process keeps freed memory in its heap as
    vitdsl's does (vitdsl/blocks/modules/heap.py), to see what that policy alone is worth."""

    def __init__(self, name: str, threads: int, timm_keeps_heap: bool = False):
        context = multiprocessing.get_context("spawn")
        self.name, self.conns, self.procs = name, {}, {}
        for side in SIDES:
            parent, child = context.Pipe()
            proc = context.Process(target=_serve, args=(child, side, name, threads, timm_keeps_heap),
                                   name=f"{side}:{name}")
            proc.start()
            child.close()
            self.conns[side], self.procs[side] = parent, proc
        try:
            for side in SIDES:
                self._answer(side)
        except BaseException:
            self.close()
            raise

    def _answer(self, side: str):
        try:
            status, value = self.conns[side].recv()
        except EOFError:
            code = self.procs[side].join(5) or self.procs[side].exitcode
            raise SideError(f"{self.name}: the {side} process died (exit code {code})") from None
        if status == "error":
            raise SideError(f"{self.name}: the {side} process failed:\n{value}")
        return value

    def ask(self, side: str, op: str, *args):
        """One side's answer to one request (``_Worker.op_*``); the other side stays idle meanwhile."""
        self.conns[side].send((op, *args))
        return self._answer(side)

    def both(self, op: str, *args) -> dict:
        return {side: self.ask(side, op, *args) for side in SIDES}

    def interleave(self, label: str, rounds: int, iters: int, warmup: int, memory: bool = False):
        """``common.interleave`` across the two processes: per side and round the median of ``iters`` calls
        of the task ``label``, whoever goes first alternating; with ``memory``, the peak RSS of ``MEMORY_CALLS``
        more calls per side, untimed: the probe hands the heap's free memory back to the kernel before each
        call (PeakRSS), and a timed call would then fault all of it in again."""
        from common import rotations

        for side in SIDES:
            if warmup:
                self.ask(side, "laps", label, warmup)
        times = {side: [] for side in SIDES}
        for order in rotations(list(SIDES), rounds):
            for side in order:
                laps, _ = self.ask(side, "laps", label, iters)
                times[side].append(statistics.median(laps))
        peaks = {side: self.ask(side, "laps", label, MEMORY_CALLS, True)[1] or [] for side in SIDES} if memory else {}
        return times, (peaks if peaks and all(peaks.values()) else None)

    def close(self) -> None:
        for side in SIDES:
            with contextlib.suppress(OSError, BrokenPipeError):
                self.conns[side].send(None)
        for side in SIDES:
            self.procs[side].join(30)
            if self.procs[side].is_alive():
                self.procs[side].kill()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


if __name__ == "__main__":
    sys.exit("sides.py is versus_timm.py's helper; run benchmarks/versus_timm.py")
