"""A process that builds a vitdsl model on the CPU keeps freed memory in its heap (vitdsl/blocks/modules/heap.py):
glibc's trimming is off there, so memory a step frees is reused by the next, not faulted in again. Each check runs
in a fresh process: the one running the tests has built models, and so keeps its heap already."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from vitdsl.blocks.modules import heap

ROOT = Path(__file__).resolve().parent.parent
glibc_only = pytest.mark.skipif(not heap.glibc(), reason="the heap's trimming is glibc's")

# 30 tensors of 4 MiB made, filled and freed three times; the page faults of the third round. glibc maps the
# first round's tensors fresh (each over its starting threshold, 128 KiB), raises the threshold to their size as
# they are freed, and takes the second round's from the top of its heap, which it trims as they are freed: by
# default the third round faults in every page again.
ROUNDS = """
import json, resource, sys, torch
{setup}
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(2):
    kept = [torch.empty(1 << 20).fill_(1.0) for _ in range(30)]
    del kept
before = faults()
kept = [torch.empty(1 << 20).fill_(1.0) for _ in range(30)]
print(json.dumps({{"faults": faults() - before, "kept": {kept}}}))
"""
PAGES = 30 * (4 << 20) // 4096


def _run(code: str, **env: str) -> dict:
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT), **env})
    return json.loads(done.stdout.splitlines()[-1])


@glibc_only
def test_a_kept_heap_gives_freed_memory_to_the_next_round_without_faulting():
    plain = _run(ROUNDS.format(setup="", kept="None"))
    kept = _run(ROUNDS.format(setup="from vitdsl.blocks.modules import heap; ok = heap.keep()", kept="ok"))
    assert kept["kept"] is True
    assert plain["faults"] > PAGES // 2  # glibc's default: the trimmed top faults in again
    assert kept["faults"] < PAGES // 10  # kept: the same pages, reused (about one tensor's faulted: 1024)


@glibc_only
def test_a_model_built_on_the_cpu_keeps_the_heap_and_one_on_the_meta_device_does_not():
    code = """
import json, vitdsl
from vitdsl.blocks.modules import heap
small = {"depth": 1, "dim": 32, "heads": 2, "mlp": 64}
vitdsl.build("vit", overrides=small, device="meta")
meta = heap.kept()
vitdsl.build("vit", overrides=small)
print(json.dumps({"meta": meta, "cpu": heap.kept()}))
"""
    assert _run(code) == {"meta": False, "cpu": True}
    assert _run(code, VITDSL_KEEP_HEAP="0") == {"meta": False, "cpu": False}


@glibc_only
def test_the_environment_can_leave_glibc_alone():
    off = _run(ROUNDS.format(setup="from vitdsl.blocks.modules import heap; ok = heap.keep()", kept="ok"),
               VITDSL_KEEP_HEAP="0")
    assert off["kept"] is False and off["faults"] > PAGES // 2


def test_keep_decides_once(monkeypatch):
    decided = heap.keep()
    monkeypatch.setenv("VITDSL_KEEP_HEAP", "0" if decided else "1")
    assert heap.keep() is decided
