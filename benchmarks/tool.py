"""How fast the tool itself is: the CLI from a cold process, a huge summary, building against timm, the zoo.

Each figure is measured in fresh subprocesses (nothing imported or cached in memory beforehand), so
import time counts, as it does for whoever types the command:

* ``vitdsl list`` and ``vitdsl validate blueprints/maxvit.yaml``: wall time of the whole command, the
  median of a few runs (validate's fastest run beside it: on a shared machine the others wait their turn).
  ``list`` keeps what it learnt of each zoo file in a cache (see ``vitdsl.listing``); the benchmark points the
  cache at a fresh folder, reports the first run (an empty cache: every blueprint validated) and then the
  median of the runs after it, the figure the target is for. Both commands must not import torch; that is
  checked too.
* ``vitdsl.summary`` of a 20B-parameter ViT (the overrides of tests/test_module.py): the call's time,
  after importing torch and vitdsl, and the process's peak RSS (``resource.getrusage``), imports included.
  The call includes torch importing ``torch._dynamo`` (its first meta-device elementwise op runs a Python
  reference kernel that imports it; about 2 s on this project's CPU), so the call is timed again with that
  import done beforehand: the summary's own time.
* ``vitdsl.interop.timm.build(name)`` against ``timm.create_model(name)`` (both initialise weights):
  interleaved rounds in one process, order alternating, after a warm-up; the median of the per-round
  ratios vitdsl / timm.
* Summarising the default of every ``blueprints/*.yaml``: the total, after import (torch's too).

Wall times are the targets' measure; CPU times are shown beside them, as they are much less swayed by
other work on a shared machine.

    .venv/bin/python benchmarks/tool.py            # the table
    .venv/bin/python benchmarks/tool.py --json     # the figures as JSON
    .venv/bin/python benchmarks/tool.py --quick    # fewer runs, to check it works
    .venv/bin/python benchmarks/tool.py --cli --runs 15   # only list and validate, more runs
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TIMM = ("vit_base_patch16_224", "swin_tiny_patch4_window7_224", "maxvit_tiny_tf_224")
OVERRIDES_20B = {"image_size": 224, "patch": 14, "dim": 6144, "depth": 44, "heads": 48, "dim_head": 128,
                 "mlp": 24576, "dropout": 0.0, "emb_dropout": 0.0}
# runs the CLI as the console script does (main() reads sys.argv), then says on stderr (last line) whether
# torch got imported
CLI = ("import sys, atexit\n"
       "atexit.register(lambda: print('torch' in sys.modules, file=sys.stderr))\n"
       "from vitdsl.cli import main\n"
       "sys.exit(main())\n")


def _env(cache: str) -> dict:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
               VITDSL_CACHE_DIR=cache, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # an installed package has its bytecode; so has a checkout after a run
    return env


CPU: list[float] = []  # CPU seconds (user + system) of each cli() run: less swayed by other load than wall time


def cli(args: list[str], cache: str) -> tuple[float, bool]:
    """Wall time of one cold ``vitdsl ARGS`` and whether it imported torch."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", CLI, *args], cwd=ROOT, env=_env(cache), capture_output=True,
                          text=True)
    took = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    CPU.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    if done.returncode != 0:
        raise SystemExit(f"vitdsl {' '.join(args)} failed:\n{done.stderr}")
    return took, done.stderr.strip().splitlines()[-1] == "True"


def python(code: str, cache: str) -> dict:
    """Run ``code`` in a fresh interpreter; it prints one JSON object as its last line."""
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=_env(cache), capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"benchmark subprocess failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


SUMMARY_20B = """
import json, resource, sys, time
import torch  # imported first: the figure is the summary's, not torch's import
import vitdsl
dynamo = time.perf_counter()
{preimport}
dynamo = time.perf_counter() - dynamo
start, cpu = time.perf_counter(), time.process_time()
s = vitdsl.summary("vit", overrides={overrides!r})
took, cpu = time.perf_counter() - start, time.process_time() - cpu
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * (1 if sys.platform == "darwin" else 1024)
print(json.dumps({{"seconds": took, "cpu": cpu, "rss_mb": rss / 2**20, "params": s.total_params,
                  "dynamo_import_s": dynamo}}))
"""

ZOO = """
import json, time
from pathlib import Path
import torch
import vitdsl
files = sorted(Path("blueprints").glob("*.yaml"))
start, cpu = time.perf_counter(), time.process_time()
for f in files:
    vitdsl.summary(str(f))
print(json.dumps({"seconds": time.perf_counter() - start, "cpu": time.process_time() - cpu,
                  "blueprints": len(files)}))
"""

BUILD = """
import json, statistics, sys, time
sys.path.insert(0, "tests")
import torchvision_stub
torchvision_stub.install()
import timm, torch
import vitdsl.interop.timm as vt
torch.set_num_threads(1)
out = {{}}
for name in {names!r}:
    def ours():
        return vt.build(name)
    def theirs():
        return timm.create_model(name)
    ours(); theirs()  # warm-up: lazy imports, first allocations
    ratios, mine, timms = [], [], []
    for r in range({rounds}):
        times = {{}}
        for which in ((ours, theirs) if r % 2 == 0 else (theirs, ours)):
            start = time.perf_counter()
            m = which()
            times[which] = time.perf_counter() - start
            del m
        ratios.append(times[ours] / times[theirs])
        mine.append(times[ours]); timms.append(times[theirs])
    out[name] = {{"ratio": statistics.median(ratios), "vitdsl_s": statistics.median(mine),
                  "timm_s": statistics.median(timms)}}
print(json.dumps(out))
"""


def measure(runs: int, rounds: int, cli_only: bool = False) -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory() as cache:
        cli(["--version"], cache)  # writes the bytecode, as installing would
        CPU.clear()
        first, torch_list = cli(["list"], cache)
        later = [cli(["list"], cache) for _ in range(runs)]
        rows.append({"what": "vitdsl list (empty cache)", "value": first, "unit": "s", "target": None,
                     "detail": f"CPU {CPU[0]:.2f} s"})
        rows.append({"what": "vitdsl list", "value": statistics.median(t for t, _ in later), "unit": "s",
                     "target": 0.5, "detail": f"CPU {statistics.median(CPU[1:]):.2f} s"})
        rows.append({"what": "vitdsl list imports torch", "value": torch_list or any(t for _, t in later),
                     "unit": "", "target": False})
        CPU.clear()
        checks = [cli(["validate", "blueprints/maxvit.yaml"], cache) for _ in range(runs)]
        rows.append({"what": "vitdsl validate blueprints/maxvit.yaml", "unit": "s", "target": 0.3,
                     "value": statistics.median(t for t, _ in checks),
                     "detail": f"best {min(t for t, _ in checks):.2f} s, CPU {statistics.median(CPU):.2f} s"})
        rows.append({"what": "vitdsl validate imports torch", "value": any(t for _, t in checks), "unit": "",
                     "target": False})
        if cli_only:
            return _judged(rows)
        big = python(SUMMARY_20B.format(overrides=OVERRIDES_20B, preimport=""), cache)
        rows.append({"what": f"summary of a {big['params'] / 1e9:.1f}B ViT", "value": big["seconds"], "unit": "s",
                     "target": 2.0, "detail": f"CPU {big['cpu']:.2f} s"})
        rows.append({"what": "  its peak RSS (import included)", "value": big["rss_mb"], "unit": "MB",
                     "target": 400})
        # torch runs meta-device elementwise ops as Python references whose first call imports torch._dynamo:
        # a one-off cost of torch's inside the call above, measured here apart
        own = python(SUMMARY_20B.format(overrides=OVERRIDES_20B, preimport="import torch._dynamo"), cache)
        rows.append({"what": "  the same, torch._dynamo imported before", "value": own["seconds"], "unit": "s",
                     "target": None, "detail": f"importing torch._dynamo: {own['dynamo_import_s']:.2f} s"})
        for name, r in python(BUILD.format(names=TIMM, rounds=rounds), cache).items():
            rows.append({"what": f"build {name} / timm.create_model", "value": r["ratio"], "unit": "×",
                         "target": 1.1, "detail": f"{r['vitdsl_s']:.2f} s vs {r['timm_s']:.2f} s"})
        zoo = python(ZOO, cache)
        rows.append({"what": f"summary of the zoo ({zoo['blueprints']} defaults)", "value": zoo["seconds"],
                     "unit": "s", "target": 20.0, "detail": f"CPU {zoo['cpu']:.2f} s"})
    return _judged(rows)


def _judged(rows: list[dict]) -> list[dict]:
    for row in rows:
        target = row["target"]
        row["pass"] = None if target is None else (row["value"] == target if isinstance(target, bool)
                                                   else row["value"] <= target)
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", action="store_true", help="print the figures as JSON")
    ap.add_argument("--quick", action="store_true", help="fewer runs and rounds")
    ap.add_argument("--cli", action="store_true", help="only the commands (list, validate)")
    ap.add_argument("--runs", type=int, help="cold runs of each command (default 5, 2 with --quick)")
    args = ap.parse_args()
    rows = measure(runs=args.runs or (2 if args.quick else 5), rounds=2 if args.quick else 5, cli_only=args.cli)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{'measure':<52} {'value':>12} {'target':>10}  result")
    for row in rows:
        value, target = row["value"], row["target"]
        shown = str(value) if isinstance(value, bool) else f"{value:.2f} {row['unit']}"
        goal = "" if target is None else (str(target) if isinstance(target, bool) else f"≤ {target} {row['unit']}")
        result = "" if row["pass"] is None else ("pass" if row["pass"] else "FAIL")
        extra = f"  ({row['detail']})" if "detail" in row else ""
        print(f"{row['what']:<52} {shown:>12} {goal:>10}  {result}{extra}")
    return 0 if all(row["pass"] is not False for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
