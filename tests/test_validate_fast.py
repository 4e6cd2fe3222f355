"""What keeps `vitdsl validate` quick (benchmarks/tool.py times it): a fresh process imports neither torch nor
the machinery of what the blueprint does not use, and the collector is frozen, and runs after 200,000
allocations instead of 700, for the command only when the process ends with it."""
from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
from pathlib import Path

from vitdsl.cli import main

ROOT = Path(__file__).resolve().parent.parent
MAXVIT = ["ok: maxvit — 58 blocks, image 3×224×224 → vector 1000",
          "  params: 79,981,380 (from the shape rules)",
          "  FLOPs:  23,056,035,840 per image",
          "  square input sizes that work (up to 1024): 221–224, 445–448, 669–672, 893–896"]

# as the console script runs it: main() reads sys.argv; at exit, what got imported and what stayed frozen
PROGRAM = """
import atexit, gc, json, sys
def said():
    mods = sorted(m for m in sys.modules if m.split(".")[0] in ("vitdsl", "torch"))
    print(json.dumps({"modules": mods, "frozen": gc.get_freeze_count() > 0, "threshold": gc.get_threshold()}),
          file=sys.stderr)
atexit.register(said)
from vitdsl.cli import main
sys.exit(main())
"""


def test_the_program_imports_what_maxvit_needs_and_exits_frozen():
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, "-c", PROGRAM, "validate", "blueprints/maxvit.yaml"], cwd=ROOT, env=env,
                          capture_output=True, text=True, check=True)
    assert done.stdout.splitlines()[:4] == MAXVIT
    end = json.loads(done.stderr.splitlines()[-1])
    modules = end["modules"]
    assert not [m for m in modules if m.split(".")[0] == "torch"]
    assert not [m for m in modules if m.startswith(("vitdsl.objectives", "vitdsl.trace", "vitdsl.interop"))]
    specs = {m.removeprefix("vitdsl.blocks.") for m in modules if m.startswith("vitdsl.blocks.")}
    assert specs == {"attention", "attention.core", "attention.local", "attention.windows", "base", "compat", "conv",
                     "heads", "mlp", "moved", "plugins", "registry", "shape"}
    assert end["frozen"] is True
    assert end["threshold"] == [200_000, *gc.get_threshold()[1:]]


def test_a_caller_gets_the_collector_back(capsys):
    assert gc.get_freeze_count() == 0
    threshold = gc.get_threshold()
    assert main(["validate", "maxvit"]) == 0
    assert capsys.readouterr().out.splitlines()[:4] == MAXVIT
    assert gc.get_freeze_count() == 0
    assert gc.get_threshold() == threshold
