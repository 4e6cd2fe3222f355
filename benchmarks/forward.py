"""Forward-pass latency of vitdsl blueprints against hand-written reference models, on CPU.

Two comparisons, measured in one interleaved run:

* ViT-B/16, batch 8 at 224x224: ``vitdsl.build("vit", variant="base")`` against lucidrains'
  ``vit_pytorch.ViT`` (same weights, imported with ``vitdsl.interop.vit_pytorch.import_weights``)
  and against timm's ``vit_base_patch16_224`` (random weights; same architecture family, so only
  the timing is compared -- its parameter count differs slightly, see the table).
* MaxViT (vit-pytorch's README configuration), batch 1 at 224x224: ``vitdsl.build("maxvit")``
  against ``vit_pytorch.max_vit.MaxViT``, again with the weights imported.
* A tiny ViT (dim 64, depth 12, 32x32 images, batch 1) against ``vit_pytorch.ViT``: so little arithmetic
  that the Python work around each block dominates, which is where a compiled blueprint could lose.

Before timing, the outputs of each blueprint and its vit-pytorch reference are checked to agree
(max abs diff <= 1e-4), so both sides compute the same maths. All models run in eval mode under
``torch.inference_mode()`` with a fixed thread count. After warm-up, every round times each model
once (a few forwards each, timed one by one; the round's figure is their median, which shrugs off
the odd stalled forward on a shared CPU), rotating the order from round to round so that drift in
machine speed (thermal, other load) hits every model alike.

Reading the output: "median ms" is a model's time per forward, the median over rounds. A ratio is
``vitdsl time / reference time`` taken within each round, and the median of those per-round
ratios is shown (with its min-max range over rounds): **< 1.0 means vitdsl is faster**, 1.10 means
vitdsl takes 10% longer.

    .venv/bin/python benchmarks/forward.py            # full run (~1-3 min on 2 cores)
    .venv/bin/python benchmarks/forward.py --quick    # a few rounds, to check it works
"""
from __future__ import annotations

import argparse
import statistics
import sys
from importlib.metadata import version

import torch
from common import BUSY_SPREAD, busiest, busy_note, default_threads, import_references, interleave, ratios

timm, vit_pytorch = import_references()

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402
from vit_pytorch.max_vit import MaxViT  # noqa: E402

import vitdsl  # noqa: E402
from vitdsl.interop.vit_pytorch import import_weights  # noqa: E402

TOLERANCE = 1e-4


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def check_same(model, reference, x, what: str) -> float:
    import_weights(model, reference)
    diff = (model(x) - reference(x)).abs().max().item()
    if diff > TOLERANCE:
        sys.exit(f"error: {what}: blueprint and vit-pytorch outputs differ by {diff:.2e} (> {TOLERANCE})")
    return diff


def bench(console: Console, title: str, models: dict, x: torch.Tensor, iters: int, rounds: int, warmup: int):
    """Time ``models`` (name -> module; the first is the blueprint) interleaved; print a table."""
    names = list(models)
    times = interleave({name: (lambda m=models[name]: m(x)) for name in names}, rounds, iters, warmup)
    ours = names[0]
    table = Table(title=f"{title} ({rounds} rounds x {iters} fwd)", title_justify="left")
    for col in ("model", "params", "median ms", "min ms", "ratio", "ratio range"):
        table.add_column(col, justify="left" if col == "model" else "right")
    for name in names:
        row = [name, f"{n_params(models[name]) / 1e6:.2f} M", f"{statistics.median(times[name]) * 1e3:.1f}",
               f"{min(times[name]) * 1e3:.1f}"]
        if name == ours:
            row += ["", ""]
        else:
            r = ratios(times[ours], times[name])
            row += [f"[bold]{r['median']:.3f}[/bold]", f"{r['min']:.2f}-{r['max']:.2f}"]
        table.add_row(*row)
    console.print(table)
    factor = busiest(times)
    if factor > BUSY_SPREAD:
        console.print(f"[yellow]{busy_note(factor)}[/yellow]")


def main(argv=None) -> int:
    cores = default_threads()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] + " Ratios are vitdsl/reference: "
                                     "< 1.0 means vitdsl is faster.")
    parser.add_argument("--threads", type=int, default=cores, help=f"torch threads (default: all cores, {cores})")
    parser.add_argument("--rounds", type=int, default=None, help="interleaved rounds (default 15; 3 with --quick)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed forwards per model first (default 2)")
    parser.add_argument("--vit-iters", type=int, default=1, help="ViT-B forwards per model per round (default 1)")
    parser.add_argument("--maxvit-iters", type=int, default=None,
                        help="MaxViT forwards per model per round (default 5; 3 with --quick)")
    parser.add_argument("--tiny-iters", type=int, default=None,
                        help="tiny-ViT forwards per model per round (default 50; 20 with --quick)")
    parser.add_argument("--quick", action="store_true", help="a short run: 3 rounds, 1 warm-up, 3 MaxViT forwards")
    args = parser.parse_args(argv)
    rounds = args.rounds or (3 if args.quick else 15)
    warmup = 1 if args.quick else args.warmup
    maxvit_iters = args.maxvit_iters or (3 if args.quick else 5)
    tiny_iters = args.tiny_iters or (20 if args.quick else 50)

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    console = Console()
    console.print(f"torch {torch.__version__}, timm {timm.__version__}, vit-pytorch {version('vit-pytorch')}, "
                  f"{torch.get_num_threads()} thread(s), CPU")

    with torch.inference_mode():
        vit = vitdsl.build("vit", variant="base").eval()
        vit_ref = vit_pytorch.ViT(image_size=224, patch_size=16, num_classes=1000, dim=768, depth=12, heads=12,
                                  mlp_dim=3072).eval()
        vit_timm = timm.create_model("vit_base_patch16_224", pretrained=False).eval()
        x = torch.randn(8, 3, 224, 224)
        diff = check_same(vit, vit_ref, x, "ViT-B/16")
        console.print(f"ViT-B/16: vitdsl matches vit-pytorch (max abs diff {diff:.1e})")

        maxvit = vitdsl.build("maxvit").eval()
        maxvit_ref = MaxViT(num_classes=1000, dim_conv_stem=64, dim=96, dim_head=32, depth=(2, 2, 5, 2),
                            window_size=7, mbconv_expansion_rate=4, mbconv_shrinkage_rate=0.25, dropout=0.1).eval()
        y = torch.randn(1, 3, 224, 224)
        diff = check_same(maxvit, maxvit_ref, y, "MaxViT")
        console.print(f"MaxViT: vitdsl matches vit-pytorch (max abs diff {diff:.1e})")

        tiny_args = {"image_size": 32, "patch": 4, "dim": 64, "depth": 12, "heads": 4, "dim_head": 16, "mlp": 128,
                     "classes": 10}
        tiny = vitdsl.build("vit", overrides=tiny_args).eval()
        tiny_ref = vit_pytorch.ViT(image_size=32, patch_size=4, num_classes=10, dim=64, depth=12, heads=4,
                                   dim_head=16, mlp_dim=128).eval()
        z = torch.randn(1, 3, 32, 32)
        diff = check_same(tiny, tiny_ref, z, "tiny ViT")
        console.print(f"tiny ViT: vitdsl matches vit-pytorch (max abs diff {diff:.1e})\n")

        bench(console, "ViT-B/16, batch 8, 224x224",
              {"vitdsl": vit, "vit-pytorch": vit_ref, "timm": vit_timm}, x, args.vit_iters, rounds, warmup)
        bench(console, "MaxViT (vit-pytorch README), batch 1, 224x224",
              {"vitdsl": maxvit, "vit-pytorch": maxvit_ref}, y, maxvit_iters, rounds, warmup)
        bench(console, "tiny ViT (dim 64, depth 12), batch 1, 32x32",
              {"vitdsl": tiny, "vit-pytorch": tiny_ref}, z, tiny_iters, rounds, warmup)
    console.print("ratio = vitdsl time / that model's time, median of per-round ratios: < 1.0 means vitdsl is faster.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
