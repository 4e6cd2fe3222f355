"""vitdsl's timm-exact blueprints against timm itself, on CPU: eval and training speed, memory, compiled.

For each model, ``vitdsl.interop.timm.build(name)`` gets the weights of ``timm.create_model(name,
pretrained=False, drop_path_rate=0)`` (``vitdsl.interop.timm.import_weights``; Swin's default stochastic
depth, 0.1, would make the training steps differ), and the two outputs, in eval and in train mode, are checked
to agree (max abs diff <= 1e-4) before anything is timed, so both compute the same maths. Then, interleaved in one
run (vitdsl and timm swap who goes first every round, so that drift in machine speed hits both alike), with
a fixed torch thread count (all the cores this process may use, os.sched_getaffinity; --threads to change):

* eval: forwards under ``torch.inference_mode()``, at batch 1 and 8 (several per round, the median kept);
* train: one step, forward + cross-entropy backward + AdamW step, at batch 16, gradients set to None
  between steps;
* train memory: the peak resident memory (RSS) of that step above the RSS just before it: activations,
  gradients and temporaries (weights and AdamW's moments are already there). Linux only: before each
  step a garbage collection and glibc's ``malloc_trim(0)`` return what earlier steps freed, writing 5 to
  ``/proc/self/clear_refs`` resets the kernel's high-water mark VmHWM to the current RSS, and after the step
  VmHWM from ``/proc/self/status`` is read. Verified on the development machine (Linux 6.18, glibc 2.36);
  each run checks again that the reset works (probes.PeakRSS) and otherwise, or off Linux, leaves memory out;
* compiled: eval (the largest eval batch) and train again, both models through ``torch.compile``
  (inductor, default mode; dynamo's caches are reset between models). Compile time (each side from an
  empty inductor cache: first_calls), graph breaks and the compiled eval's difference from eager go to --json;
* the CPU's fp32 GEMM rate (2048 x 2048 matmuls, before and after the models), and each model's share of
  it: the blueprint's FLOPs (``vitdsl.summary(model).total_flops``: matmuls, convolutions and attention,
  per image; a training step counted as 3x the forward) per second over that rate.

Reading the table: a ratio is ``vitdsl time / timm time`` within a round; the median over rounds is shown,
with its min-max range below: **< 1.0 means vitdsl is faster**. The levers column says which performance
levers each vitdsl model pulls (probes.levers: read off one forward, vitdsl has no switchboard to ask).

    .venv/bin/python benchmarks/versus_timm.py                 # everything (long: tens of minutes on 2 cores)
    .venv/bin/python benchmarks/versus_timm.py --quick --no-compile --models vit_small_patch16_224
    .venv/bin/python benchmarks/versus_timm.py --json > bench.json    # or --markdown, for the README
"""
from __future__ import annotations

import argparse
import gc
import json
import sys
import time

import torch
import torch.nn.functional as F
from common import default_threads, import_references, interleave
from probes import PeakRSS, gemm_laps, gemm_rate, levers, sliced_mlps
from rich.console import Console
from versus_timm_report import measure_entry, render, to_markdown

import vitdsl
import vitdsl.interop.timm as vt

MODELS = ("vit_small_patch16_224", "vit_base_patch16_224", "deit3_small_patch16_224",
          "swin_tiny_patch4_window7_224", "maxvit_tiny_tf_224", "eva02_tiny_patch14_224", "pvt_v2_b1")
TOLERANCE = 1e-4
SIDES = ("vitdsl", "timm")


def train_step(model, optimizer, x, y):
    def step():
        F.cross_entropy(model(x), y).backward()
        optimizer.step()
        # freed here, not at the start of the next step: the memory probe's "before" holds no gradients
        optimizer.zero_grad(set_to_none=True)
    return step


def first_calls(tasks: dict) -> tuple[dict[str, float], dict[str, int]]:
    """Run each task once (for a compiled one: the compilation), timed; with the graph breaks dynamo saw.

    Each compiles from an empty inductor cache (``fresh_cache``: a new cache folder, the in-memory caches
    cleared), after inductor's one-time start-up ran on a toy function. In one shared cache the second model
    reuses the kernels the first compiled (the two generate the same C++ source), so timm, always second, looked
    2.7× faster to compile (EVA02-T 403 s / 149 s); cold, each alone, they take the same (EVA02-T eval: 33.6 and
    33.0 CPU-seconds; at depth 2 and 56 px, 36 s / 27 s shared, vitdsl first, and 16.6 s / 17.0 s here)."""
    from torch._dynamo.utils import counters
    from torch._inductor.utils import fresh_cache

    with fresh_cache():
        torch.compile(lambda t: t.sin() + 1)(torch.ones(2))
    seconds, breaks = {}, {}
    for name, task in tasks.items():
        counters.clear()
        with fresh_cache():
            start = time.perf_counter()
            task()
            seconds[name] = time.perf_counter() - start
        breaks[name] = sum(counters["graph_break"].values())
    return seconds, breaks


class Bench:
    def __init__(self, args, log: Console, timm):
        self.args, self.log, self.timm = args, log, timm
        self.peak = PeakRSS()

    def say(self, text: str) -> None:
        self.log.print(text, highlight=False)

    def time(self, label, tasks, flops, iters, memory=False, extra=None):
        a = self.args
        probe = self.peak if memory and self.peak.reason is None else None
        if probe is not None:
            probe.peaks.clear()
        times = interleave(tasks, a.rounds, iters, a.warmup, probe and probe.before, probe and probe.after)
        entry = measure_entry(label, times, flops, self.gemm, dict(probe.peaks) if probe else None)
        ms = ", ".join(f"{side} {entry[side]['median'] * 1e3:.1f} ms" for side in SIDES)
        self.say(f"  {label}: ratio {entry['ratio']['median']:.3f} ({ms})")
        return {**entry, **(extra or {})}

    def model(self, name: str) -> dict:
        a = self.args
        torch.manual_seed(0)
        ours = vt.build(name).eval()
        # drop_path_rate=0: timm's Swin defaults to stochastic depth 0.1 (random, and no op of vitdsl's build)
        theirs = self.timm.create_model(name, pretrained=False, drop_path_rate=0.0).eval()
        vt.import_weights(ours, theirs)
        summary = vitdsl.summary(ours)
        shape = tuple(summary.input)
        with torch.inference_mode():
            probe = torch.randn(2, *shape)  # two images: a mix-up across the batch would show
            diff = (ours(probe) - theirs(probe)).abs().max().item()
        if diff > TOLERANCE:
            sys.exit(f"error: {name}: vitdsl and timm outputs differ by {diff:.2e} (> {TOLERANCE})")
        flops = summary.total_flops
        self.say(f"{name}: outputs agree (max abs diff {diff:.1e}), {summary.total_params / 1e6:.1f} M params, "
                 f"{flops / 1e9:.2f} GFLOPs/image")
        one = torch.randn(1, *shape)
        out = {"name": name, "input": list(shape), "params": summary.total_params, "flops_per_image": flops,
               "max_abs_diff": diff, "levers": levers(ours, one), "timm_levers": levers(theirs, one),
               "measures": []}
        widest = max(a.eval_batches)
        out["levers"].update(sliced_mlp_calls=sliced_mlps(ours, torch.randn(widest, *shape)),
                             sliced_at_batch=widest)
        models = dict(zip(SIDES, (ours, theirs)))
        measures = out["measures"]
        with torch.inference_mode():
            for b in a.eval_batches:
                x = torch.randn(b, *shape)
                tasks = {s: (lambda m=m: m(x)) for s, m in models.items()}
                measures.append(self.time(f"eval b{b}", tasks, flops * b, a.iters))
            if a.compile:
                b = max(a.eval_batches)
                x = torch.randn(b, *shape)
                eager = {s: m(x) for s, m in models.items()}
                compiled = {s: torch.compile(m) for s, m in models.items()}
                tasks = {s: (lambda m=m: m(x)) for s, m in compiled.items()}
                seconds, breaks = first_calls(tasks)
                drift = {s: (compiled[s](x) - eager[s]).abs().max().item() for s in SIDES}
                measures.append(self.time(f"compiled eval b{b}", tasks, flops * b, a.iters, extra={
                    "compile_s": seconds, "graph_breaks": breaks, "max_abs_diff_from_eager": drift}))
                del eager, compiled, tasks
                torch._dynamo.reset()
        b = a.train_batch
        x, y = torch.randn(b, *shape), torch.randint(0, summary.output[-1], (b,))
        optimizers = {s: torch.optim.AdamW(m.parameters(), lr=1e-4) for s, m in models.items()}
        for m in models.values():
            m.train()
        with torch.no_grad():  # train mode too (dropout, drop-path, batch statistics) must be the same maths
            out["max_abs_diff_train_mode"] = (ours(probe) - theirs(probe)).abs().max().item()
        if out["max_abs_diff_train_mode"] > TOLERANCE:
            sys.exit(f"error: {name}: in train mode, vitdsl and timm outputs differ by "
                     f"{out['max_abs_diff_train_mode']:.2e} (> {TOLERANCE})")
        tasks = {s: train_step(m, optimizers[s], x, y) for s, m in models.items()}
        measures.append(self.time(f"train b{b}", tasks, 3 * flops * b, 1, memory=True))
        if a.compile:
            compiled = {s: torch.compile(m) for s, m in models.items()}
            tasks = {s: train_step(compiled[s], optimizers[s], x, y) for s in SIDES}
            seconds, breaks = first_calls(tasks)
            measures.append(self.time(f"compiled train b{b}", tasks, 3 * flops * b, 1, memory=True,
                                      extra={"compile_s": seconds, "graph_breaks": breaks}))
            del compiled, tasks
            torch._dynamo.reset()
        return out

    def run(self) -> dict:
        a = self.args
        n = 1024 if a.quick else 2048
        laps = gemm_laps(n, 10)
        self.gemm = gemm_rate(n, laps)
        self.say(f"fp32 GEMM ({n}x{n}): {self.gemm / 1e9:.1f} GFLOP/s")
        report = {"meta": {}, "models": []}
        for name in a.models:
            report["models"].append(self.model(name))
            gc.collect()
        after = gemm_laps(n, 10)
        report["meta"] = {
            "torch": torch.__version__, "timm": self.timm.__version__, "vitdsl": vitdsl.__version__,
            "threads": torch.get_num_threads(), "device": "cpu", "rounds": a.rounds, "eval_iters": a.iters,
            "warmup": a.warmup, "eval_batches": a.eval_batches, "train_batch": a.train_batch, "compile": a.compile,
            "quick": a.quick, "tolerance": TOLERANCE,
            "gemm": {"n": n, "flops_per_s_before": self.gemm, "flops_per_s_after": gemm_rate(n, after),
                     "flops_per_s": self.gemm},
            "memory": self.peak.reason or "peak RSS above the RSS before the step (clear_refs 5, VmHWM)"}
        return report


def parse(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] + " Ratios are vitdsl/timm: "
                                "< 1.0 means vitdsl is faster.")
    p.add_argument("--models", type=lambda s: [m for m in s.split(",") if m], default=list(MODELS),
                   help="comma-separated timm names the zoo reproduces (default: the seven above)")
    p.add_argument("--threads", type=int, default=default_threads(),
                   help=f"torch threads (default: all cores, {default_threads()})")
    p.add_argument("--rounds", type=int, help="interleaved rounds per measure (default 7; 2 with --quick)")
    p.add_argument("--iters", type=int, help="eval forwards per model per round (default 3; 1 with --quick)")
    p.add_argument("--warmup", type=int, default=1, help="untimed calls per model first (default 1)")
    p.add_argument("--eval-batches", type=lambda s: [int(b) for b in s.split(",")],
                   help="eval batch sizes (default 1,8; 1,2 with --quick)")
    p.add_argument("--train-batch", type=int, help="training batch size (default 16; 2 with --quick)")
    p.add_argument("--no-compile", dest="compile", action="store_false", help="skip the torch.compile measures")
    p.add_argument("--quick", action="store_true", help="few rounds and small batches, to check it works")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="print everything measured as JSON, no table")
    out.add_argument("--markdown", action="store_true", help="print the table as markdown (for the README)")
    a = p.parse_args(argv)
    a.rounds = a.rounds or (2 if a.quick else 7)
    a.iters = a.iters or (1 if a.quick else 3)
    a.eval_batches = a.eval_batches or ([1, 2] if a.quick else [1, 8])
    a.train_batch = a.train_batch or (2 if a.quick else 16)
    known = set(vt.names())
    unknown = [m for m in a.models if m not in known]
    if unknown:
        p.error(f"not a timm model the zoo reproduces: {', '.join(unknown)}")
    return a


def main(argv=None) -> int:
    a = parse(argv)
    timm, _ = import_references()
    torch.set_num_threads(a.threads)
    log = Console(stderr=True)  # progress; stdout holds only the result
    log.print(f"torch {torch.__version__}, timm {timm.__version__}, {torch.get_num_threads()} thread(s), CPU",
              highlight=False)
    report = Bench(a, log, timm).run()
    if a.json:
        print(json.dumps(report, indent=1))
    elif a.markdown:
        print(to_markdown(report))
    else:
        console = Console()
        for part in render(report):
            console.print(part)
    return 0


if __name__ == "__main__":
    sys.exit(main())
