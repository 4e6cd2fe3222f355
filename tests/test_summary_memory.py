"""The summary's MACs next to its FLOPs, the activations kept for backward, the training-memory estimate,
--batch in the text, the complete --json, and a closed pipe."""
import json
import subprocess
import sys

import pytest
import torch

import vitdsl
from vitdsl.blocks.modules.attention import explicit_attention
from vitdsl.blocks.modules.mlp import MLP
from vitdsl.blocks.modules.recompute import watching
from vitdsl.cli import main

DIGITS = "examples/digits_vit.yaml"


@pytest.fixture(scope="module")
def vit_b16():
    return vitdsl.summary("vit", "base")


def test_vit_b16_has_timms_macs_and_twice_as_many_flops(vit_b16):
    assert vit_b16.total_flops == 35_127_656_448
    assert vit_b16.total_macs == vit_b16.total_flops // 2 == 17_563_828_224
    assert round(vit_b16.total_macs / 1e9, 1) == 17.6  # timm's "GMACs" for vit_base_patch16_224
    assert round(vit_b16.total_flops / 1e9, 1) == 35.1
    text = str(vit_b16)
    assert "Total FLOPs: 35.13 GFLOPs per image (35,127,656,448; matmuls and convolutions, attention included)" in text
    assert ("Total MACs: 17.56 GMACs per image (17,563,828,224; 2 FLOPs each: papers and timm quote MACs, often "
            "calling them FLOPs)") in text


def test_the_json_is_complete(vit_b16):
    data = vit_b16.to_dict()
    assert (data["input_kind"], data["input"], data["output_kind"], data["output"]) == (
        "image", [3, 224, 224], "vector", [1000])
    assert {k: data["variant_params"][k] for k in ("dim", "depth", "heads", "patch")} == {
        "dim": 768, "depth": 12, "heads": 12, "patch": 16}
    assert data["total_macs"] == 17_563_828_224 and data["batch"] == 1 and data["dtype"] == "float32"
    attn = next(b for b in data["blocks"] if b["path"] == "blocks.3.attn")
    assert attn["input_kinds"] == ["tokens"] and attn["output_kind"] == "tokens"
    assert attn["repeats"] == [["blocks", 3]] and attn["macs"] == attn["flops"] // 2
    assert attn["kept_bytes"] > 0
    assert data["training_bytes"]["activations"] == sum(b["kept_bytes"] for b in data["blocks"])
    json.dumps(data)  # every value is JSON


def _kept_for_real(model, x) -> int:
    """The bytes autograd saves in a real CPU forward (explicit attention, eval), each storage once: the
    summary's meta-device count must agree."""
    weights = {t.untyped_storage().data_ptr() for t in [*model.parameters(), *model.buffers()]}
    storages = {}

    def pack(t):
        s = t.untyped_storage()
        if s.data_ptr() not in weights:
            storages[s.data_ptr()] = s.nbytes()
        return t

    def keep(tensors):
        for t in tensors:
            pack(t)

    model.eval()
    with (explicit_attention(), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t),
          watching(keep)):  # what the blocks that recompute keep, which the hooks do not see
        model(x)
    return sum(storages.values())


def test_the_activations_kept_for_backward_are_what_autograd_saves():
    model = vitdsl.build(DIGITS, seed=0)
    s = vitdsl.summary(model, batch=4)
    assert s.kept_bytes == _kept_for_real(model, torch.randn(4, 1, 8, 8)) == 350_720
    MLP.recompute = False  # one pass: every MLP keeps its norm's output and its activation's too
    try:
        assert vitdsl.summary(model, batch=4).kept_bytes == _kept_for_real(model, torch.randn(4, 1, 8, 8)) == 450_048
    finally:
        MLP.recompute = True
    t = s.training_bytes
    assert t["gradients"] == 4 * s.trainable_params and t["adamw_moments"] == 2 * t["gradients"]
    assert t["weights"] == s.params_bytes + s.buffers_bytes
    assert t["total"] == t["activations"] + t["weights"] + t["gradients"] + t["adamw_moments"]


def test_batch_shows_in_the_text(capsys):
    assert main(["summary", DIGITS, "--batch", "8"]) == 0
    out = capsys.readouterr().out
    s = vitdsl.summary(DIGITS, batch=8)
    lines = out.splitlines()
    assert lines[0].rstrip().endswith("digits_vit  image 1×8×8 → vector 10  batch 8")
    assert lines[2].endswith("Kept for ┃") and lines[3].endswith("backward ┃")  # the column's two-line header
    assert "For the batch of 8: 18.10 MFLOPs, 9.05 MMACs" in out and s.total_flops * 8 == 18_098_176
    assert "Training memory, estimated (batch 8, float32, AdamW): " in out


def test_the_cli_json_has_kinds_and_the_variants_parameters(capsys):
    assert main(["summary", DIGITS, "--json", "--set", "depth=1"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["variant_params"]["depth"] == 1 and data["variant_params"]["dim"] == 64
    assert [(b["path"], b["input_kinds"], b["output_kind"]) for b in data["blocks"]][-2:] == [
        ("pool", ["tokens"], "vector"), ("head", ["vector"], "vector")]


CLOSED_PIPES = """
import os, sys
from vitdsl.cli import main
for args in (["summary", "vit", "--json"], ["summary", "examples/digits_vit.yaml"], ["graph", "maxvit"]):
    read, write = os.pipe()
    os.close(read)  # the reader is gone before a byte is written, as with '| head -0'
    os.dup2(write, sys.stdout.fileno())
    os.close(write)
    assert main(args) == 0, args
"""


def test_a_closed_pipe_ends_every_command_quietly():
    """`vitdsl summary vit --json | head -1` and the like: status 0, nothing on stderr (one interpreter runs the
    three commands, each writing into a pipe whose reader has gone, and exits as `python -m vitdsl` does)."""
    done = subprocess.run([sys.executable, "-c", CLOSED_PIPES], capture_output=True, text=True)
    assert (done.returncode, done.stderr) == (0, "")
