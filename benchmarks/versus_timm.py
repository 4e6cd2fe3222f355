"""vitdsl's timm-exact blueprints against timm itself, on CPU: eval and training speed, memory, compiled.

For each model, ``vitdsl.interop.timm.build(name)`` gets the weights of ``timm.create_model(name,
pretrained=False, drop_path_rate=0)`` (``vitdsl.interop.timm.import_weights``; Swin's default stochastic
depth, 0.1, would make the training steps differ), and the two outputs, in eval and in train mode, are checked
to agree (max abs diff <= 1e-4) before anything is timed, so both compute the same maths. Each side runs in a
process of its own (sides.py: in one process the two shared one heap and moved each other's page faults),
driven in turn from this one. Then, interleaved in one run (vitdsl and timm swap who goes first every round,
so that drift in machine speed hits both alike), with a fixed torch thread count (all the cores this process
may use, os.sched_getaffinity; --threads to change):

* eval: forwards under ``torch.inference_mode()``, at batch 1 and 8 (several per round, the median kept);
* train: one step, forward + cross-entropy backward + AdamW step, at batch 16, gradients set to None
  between steps;
* train memory: the peak resident memory (RSS) of that step above the RSS just before it: activations,
  gradients and temporaries (weights and AdamW's moments are already there), in three more steps per side
  after the timed ones (the probe empties the heap before each, which a timed step would pay for in page
  faults). Linux only: before each such step a garbage collection and glibc's ``malloc_trim(0)`` return
  what earlier steps freed, writing 5 to ``/proc/self/clear_refs`` resets the kernel's high-water mark VmHWM
  to the current RSS, and after the step VmHWM from ``/proc/self/status`` is read. Verified on the
  development machine (Linux 6.18, glibc 2.36); each run checks again that the reset works
  (probes.PeakRSS) and otherwise, or off Linux, leaves memory out;
* compiled: eval (the largest eval batch) and train again, both models through ``torch.compile``
  (inductor, default mode; every model's sides are fresh processes). Compile time (each side from an
  empty inductor cache: sides._first_call), graph breaks and the compiled eval's difference from eager go to --json;
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
import json
import sys

import torch
from common import default_threads, import_references
from probes import gemm_laps, gemm_rate
from rich.console import Console
from sides import SIDES, SideError, Sides
from versus_timm_report import measure_entry, render, to_markdown

import vitdsl
import vitdsl.interop.timm as vt

MODELS = ("vit_small_patch16_224", "vit_base_patch16_224", "deit3_small_patch16_224",
          "swin_tiny_patch4_window7_224", "maxvit_tiny_tf_224", "eva02_tiny_patch14_224", "pvt_v2_b1")
TOLERANCE = 1e-4


class Bench:
    def __init__(self, args, log: Console, timm):
        self.args, self.log, self.timm = args, log, timm
        self.memory_reason = None

    def say(self, text: str) -> None:
        self.log.print(text, highlight=False)

    def time(self, sides: Sides, label, flops, iters, memory=False, extra=None):
        a = self.args
        times, peaks = sides.interleave(label, a.rounds, iters, a.warmup, memory)
        entry = measure_entry(label, times, flops, self.gemm, peaks)
        ms = ", ".join(f"{side} {entry[side]['median'] * 1e3:.1f} ms" for side in SIDES)
        self.say(f"  {label}: ratio {entry['ratio']['median']:.3f} ({ms})")
        return {**entry, **(extra or {})}

    def agree(self, name: str, outputs: dict, mode: str) -> float:
        diff = (outputs["vitdsl"] - outputs["timm"]).abs().max().item()
        if diff > TOLERANCE:
            sys.exit(f"error: {name}: {mode}, vitdsl and timm outputs differ by {diff:.2e} (> {TOLERANCE})")
        return diff

    def model(self, name: str) -> dict:
        with Sides(name, self.args.threads, self.args.timm_keeps_heap) as sides:
            return self.measure(name, sides)

    def measure(self, name: str, sides: Sides) -> dict:
        a = self.args
        summary = sides.ask("vitdsl", "summary")
        shape, flops = tuple(summary["input"]), summary["flops"]
        self.memory_reason = sides.ask("vitdsl", "memory_reason")
        probe = torch.randn(2, *shape)  # two images: a mix-up across the batch would show
        diff = self.agree(name, sides.both("forward", probe, False), "in eval mode")
        self.say(f"{name}: outputs agree (max abs diff {diff:.1e}), {summary['params'] / 1e6:.1f} M params, "
                 f"{flops / 1e9:.2f} GFLOPs/image")
        one, widest = torch.randn(1, *shape), max(a.eval_batches)
        out = {"name": name, "input": list(shape), "params": summary["params"], "flops_per_image": flops,
               "max_abs_diff": diff, "levers": sides.ask("vitdsl", "levers", one, torch.randn(widest, *shape),
                                                        torch.randn(a.train_batch, *shape)),
               "timm_levers": sides.ask("timm", "levers", one), "measures": []}
        measures = out["measures"]
        for b in a.eval_batches if a.eager else ():
            sides.both("eval", f"eval b{b}", torch.randn(b, *shape))
            measures.append(self.time(sides, f"eval b{b}", flops * b, a.iters))
        if a.compile:
            label = f"compiled eval b{widest}"
            found = sides.both("compiled eval", label, torch.randn(widest, *shape))
            measures.append(self.time(sides, label, flops * widest, a.iters, extra=regroup(found)))
        b = a.train_batch
        x, y = torch.randn(b, *shape), torch.randint(0, summary["classes"], (b,))
        # train mode too (dropout, drop-path, batch statistics) must be the same maths
        out["max_abs_diff_train_mode"] = self.agree(name, sides.both("forward", probe, True), "in train mode")
        if a.eager:
            sides.both("train", f"train b{b}", x, y)
            measures.append(self.time(sides, f"train b{b}", 3 * flops * b, 1, memory=True))
        if a.compile:
            found = sides.both("compiled train", f"compiled train b{b}", x, y)
            measures.append(self.time(sides, f"compiled train b{b}", 3 * flops * b, 1, memory=True,
                                      extra=regroup(found)))
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
        after = gemm_laps(n, 10)
        report["meta"] = {
            "torch": torch.__version__, "timm": self.timm.__version__, "vitdsl": vitdsl.__version__,
            "threads": torch.get_num_threads(), "device": "cpu", "rounds": a.rounds, "eval_iters": a.iters,
            "warmup": a.warmup, "eval_batches": a.eval_batches, "train_batch": a.train_batch, "compile": a.compile,
            "eager": a.eager,
            "quick": a.quick, "tolerance": TOLERANCE,
            "gemm": {"n": n, "flops_per_s_before": self.gemm, "flops_per_s_after": gemm_rate(n, after),
                     "flops_per_s": self.gemm},
            "memory": self.memory_reason or "peak RSS above the RSS before the step (clear_refs 5, VmHWM)",
            "processes": "each side in its own process (sides.py)",
            "heap_kept": {"vitdsl": True, "timm": a.timm_keeps_heap}}
        return report


def regroup(found: dict[str, dict]) -> dict[str, dict]:
    """Per-side findings ({side: {key: value}}) as {key: {side: value}}, the report's shape."""
    return {key: {side: found[side][key] for side in SIDES} for key in found[SIDES[0]]}


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
    p.add_argument("--no-eager", dest="eager", action="store_false",
                   help="skip the eager measures (eval, train): the compiled ones alone")
    p.add_argument("--timm-keeps-heap", action="store_true",
                   help="timm's process keeps freed memory in its heap too, as every process that builds a vitdsl "
                        "model on the CPU does (glibc's trimming off): what that policy alone is worth")
    p.add_argument("--quick", action="store_true", help="few rounds and small batches, to check it works")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="print everything measured as JSON, no table")
    out.add_argument("--markdown", action="store_true", help="print the table as markdown (for the README)")
    a = p.parse_args(argv)
    a.rounds = a.rounds or (2 if a.quick else 7)
    a.iters = a.iters or (1 if a.quick else 3)
    a.eval_batches = a.eval_batches or ([1, 2] if a.quick else [1, 8])
    a.train_batch = a.train_batch or (2 if a.quick else 16)
    if not (a.eager or a.compile):
        p.error("--no-eager and --no-compile leave nothing to measure")
    if min(a.eval_batches + [a.train_batch, a.rounds, a.iters]) < 1:
        p.error("batch sizes, --rounds and --iters must be at least 1")
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
    try:
        report = Bench(a, log, timm).run()
    except SideError as exc:  # a side's own traceback is in the message; the parent's would add nothing
        print(f"error: {exc}", file=sys.stderr)
        return 2
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
