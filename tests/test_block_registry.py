"""The lazy block registry (vitdsl.blocks.registry): its table of the library's blocks is the registry a full
import fills, a fresh process imports only the spec modules of the blocks a blueprint names, and what lists
the registry sees every block."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from vitdsl.blocks import REGISTRY
from vitdsl.blocks.registry import LIBRARY, PACKAGE, library_modules

ROOT = Path(__file__).resolve().parent.parent


def test_the_table_names_the_module_of_every_library_block():
    for module in library_modules():
        __import__(module)
    library = {name: cls.__module__ for name, cls in REGISTRY.items() if cls.__module__.startswith(PACKAGE + ".")}
    assert library == {name: PACKAGE + module for name, module in LIBRARY.items()}


FRESH = """
import json, sys
import vitdsl
from vitdsl.blocks import REGISTRY
out = {"after_import": sorted(m for m in sys.modules if m.startswith("vitdsl.blocks."))}
vitdsl.validate("maxvit")
out["after_maxvit"] = sorted(m for m in sys.modules if m.startswith("vitdsl.blocks."))
out["no_such_block"] = "no-such-block" in REGISTRY
out["mlp"] = REGISTRY.get("mlp").__name__
from vitdsl.blocks.base import BlockClash, BlockSpec
class Mine(BlockSpec):
    block = "token-merge"  # a library block not imported yet
try:
    vitdsl.register_block(Mine)
    out["clash"] = None
except BlockClash as e:
    out["clash"] = str(e)
out["copied"] = len(dict(REGISTRY))
out["sorted"] = sorted(REGISTRY) == sorted(REGISTRY.keys())
print(json.dumps(out))
"""


def test_a_fresh_process_imports_the_blocks_it_names_and_lists_them_all():
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, "-c", FRESH], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    out = json.loads(done.stdout.splitlines()[-1])
    specs = {m for m in out["after_import"] if m.rpartition(".")[2] not in ("base", "shape", "registry", "compat",
                                                                             "moved")}
    assert specs == set()
    assert set(out["after_maxvit"]) - set(out["after_import"]) == {
        f"{PACKAGE}.{m}" for m in ("attention", "attention.core", "attention.local", "attention.windows", "conv",
                                   "heads", "mlp", "plugins")}
    assert out["no_such_block"] is False and out["mlp"] == "MLP"
    assert out["clash"] == ("block 'token-merge' of __main__.Mine clashes with the built-in block 'token-merge' "
                            "(vitdsl.blocks.token_merge.TokenMerge)")
    assert out["copied"] == len(LIBRARY) and out["sorted"] is True
