"""How close a model's forward can come to the CPU's GEMM rate: the ceiling its own matrix products set.

The issue's target reads a model's FLOPs per second against the rate of one large (2048 x 2048) fp32 matmul.
But a model's products are smaller and thinner than that (ViT-B/16 at batch 8: 1576 x 768 by 768 x 2304, and
attention's 197 x 64 per head), and smaller products run slower on the same cores. This script records every
matrix product (mm, addmm, bmm, the fused attention kernel) that one eval forward of a model runs, replays
those products alone on fresh tensors of the same shapes, and prints:

* the model's rate (its counted FLOPs over its forward time) and its share of the 2048-matmul rate;
* the products-only rate (the same FLOPs over the replay time): the most the model could reach if every
  other op (norms, softmax, GELU, copies) took no time — the ceiling;
* the model's share of that ceiling: what is left to win outside the products.

Timing: the fastest of ``--laps`` laps of each, interleaved (the machine's quiet moments, as for the GEMM
rate in versus_timm.py). Run: ``python benchmarks/gemm_ceiling.py [--models vit_base_patch16_224]
[--batch 8]`` (timm models, built by vitdsl from its zoo, with timm's weights layout; no timm needed to run)."""
from __future__ import annotations

import argparse
import math
import sys
import time

import torch
from common import default_threads
from probes import gemm_laps, gemm_rate
from torch.utils._python_dispatch import TorchDispatchMode

PRODUCTS = {"mm", "addmm", "bmm", "baddbmm", "matmul", "linear", "scaled_dot_product_attention",
            "_scaled_dot_product_flash_attention_for_cpu"}


class Products(TorchDispatchMode):
    """Records each matrix product a forward runs (as dispatched: under inference mode ``linear`` and
    ``scaled_dot_product_attention`` arrive whole): (op, argument shapes, other arguments)."""

    def __init__(self):
        super().__init__()
        self.calls: list[tuple] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func.__name__.split(".")[0] in PRODUCTS:
            shapes = tuple(tuple(a.shape) if isinstance(a, torch.Tensor) else a for a in args)
            self.calls.append((func, shapes, kwargs))
        return func(*args, **kwargs)


def flops_of(func, shapes) -> int:
    """2 x multiply-adds of one recorded product."""
    name = func.__name__.split(".")[0]
    if name == "linear":
        return 2 * math.prod(shapes[0]) * shapes[1][0]
    if "attention" in name:  # q kᵀ and the weights times v
        q, k = shapes[0], shapes[1]
        return 2 * 2 * math.prod(q) * k[-2]
    a, b = shapes[-2], shapes[-1]  # (..., m, k) @ (..., k, n), batch dims broadcast
    batch = math.prod(torch.broadcast_shapes(a[:-2], b[:-2])) if len(a) > 2 or len(b) > 2 else 1
    return 2 * batch * a[-2] * a[-1] * b[-1]


def replay(calls: list[tuple]):
    """A function that runs the recorded products alone, on random tensors of their shapes."""
    prepared = [(func, [torch.randn(s) if isinstance(s, tuple) else s for s in shapes], kwargs)
                for func, shapes, kwargs in calls]

    def run():
        for func, args, kwargs in prepared:
            func(*args, **kwargs)
    return run


def fastest(fn, laps: int) -> float:
    fn()
    best = float("inf")
    for _ in range(laps):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="vit_base_patch16_224,vit_small_patch16_224",
                        help="comma-separated timm names the zoo reproduces (default: %(default)s)")
    parser.add_argument("--batch", type=int, default=8, help="eval batch size (default 8)")
    parser.add_argument("--laps", type=int, default=10, help="timed laps, the fastest kept (default 10)")
    parser.add_argument("--threads", type=int, default=default_threads(), help="torch threads (default: all cores)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    from vitdsl.interop import timm as vt

    rate = gemm_rate(2048, gemm_laps(2048, args.laps))
    print(f"fp32 GEMM (2048x2048): {rate / 1e9:.1f} GFLOP/s, {args.threads} threads, batch {args.batch}")
    for name in args.models.split(","):
        torch.manual_seed(0)
        model = vt.build(name).eval()
        x = torch.randn(args.batch, *model.input_shape)
        with torch.inference_mode():
            with Products() as seen:
                model(x)
            products = replay(seen.calls)
            flops = sum(flops_of(f, s) for f, s, _ in seen.calls)
            model_time, products_time = fastest(lambda: model(x), args.laps), fastest(products, args.laps)
        ceiling = flops / products_time
        print(f"{name}: {len(seen.calls)} products, {flops / 1e9:.2f} GFLOP; model {flops / model_time / 1e9:.1f} "
              f"GFLOP/s = {flops / model_time / rate:.0%} of the GEMM rate; products alone {ceiling / 1e9:.1f} "
              f"GFLOP/s = {ceiling / rate:.0%} of it (the ceiling); model at {products_time / model_time:.0%} "
              "of its ceiling")
    return 0


if __name__ == "__main__":
    sys.exit(main())
