"""benchmarks/versus_timm.py's bookkeeping, on fabricated timings (a real --quick run takes minutes on a
shared CPU; timings are never asserted): the per-measure entries, the glance table as rich and markdown,
the JSON, the options; and its probes on real models: the levers one forward pulls, the peak-RSS reset."""
import io
import json
import os
import sys
from pathlib import Path

import pytest
import torch
from rich.console import Console
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from probes import PeakRSS, gemm_rate, lever_words, levers, recomputing_blocks, sliced_mlps  # noqa: E402
from versus_timm_report import measure_entry, render, to_markdown  # noqa: E402

import vitdsl  # noqa: E402
from vitdsl.blocks.modules.attention.core import explicit_attention  # noqa: E402

MiB = 2**20
LEVERS = {"sdpa_calls": 12, "conv2d_calls": 0, "channels_last_conv2d_calls": 0, "attention_modules": 12,
          "attention_calls": 12, "fused_qkv_modules": 12}


def fabricated(vitdsl_eval=(0.5, 0.75, 0.5)) -> dict:
    meta = {"torch": "2.13", "timm": "1.0.31", "threads": 2, "rounds": 3, "memory": "peak RSS",
            "gemm": {"n": 1024, "flops_per_s": 1e10, "flops_per_s_after": 8e9}}
    measures = [measure_entry("eval b1", {"vitdsl": list(vitdsl_eval), "timm": [0.5, 0.5, 0.625]}, 2e9, 1e10),
                measure_entry("train b16", {"vitdsl": [2.0, 2.0, 2.0], "timm": [4.0, 4.0, 4.0]}, 4e10, 1e10,
                              peaks={"vitdsl": [3 * MiB] * 3, "timm": [4 * MiB] * 3}),
                {**measure_entry("compiled eval b1", {"vitdsl": [0.25] * 3, "timm": [0.5] * 3}, 2e9, 1e10),
                 "compile_s": {"vitdsl": 40.4, "timm": 20.0}, "graph_breaks": {"vitdsl": 0, "timm": 2}}]
    model = {"name": "vit_small_patch16_224", "flops_per_image": 9.2e9, "levers": LEVERS, "measures": measures}
    return {"meta": meta, "models": [model]}


def test_a_measure_entry_holds_the_median_per_round_ratio_and_the_gemm_shares():
    eval_b1, train, _ = fabricated()["models"][0]["measures"]
    assert eval_b1["ratio"] == {"median": 1.0, "min": 0.8, "max": 1.5, "per_round": [1.0, 1.5, 0.8]}
    assert eval_b1["vitdsl"] == {"median": 0.5, "min": 0.5, "max": 0.75, "rounds": [0.5, 0.75, 0.5]}
    assert eval_b1["gemm_share"] == {"vitdsl": 0.4, "timm": 0.4}
    assert "peak_rss_bytes" not in eval_b1
    assert train["gemm_share"] == {"vitdsl": 2.0, "timm": 1.0}
    assert train["peak_rss_bytes"]["ratio"]["median"] == 0.75
    assert train["peak_rss_bytes"]["timm"]["median"] == 4 * MiB


def test_the_markdown_table_has_one_row_per_model_with_ratios_and_ranges():
    lines = to_markdown(fabricated()).splitlines()
    assert lines[:3] == [
        "| model | GFLOPs | levers | eval b1 | train b16 | train mem | compiled eval b1 | GEMM share eval b1 "
        "| GEMM share train b16 |",
        "|---|---|---|--:|--:|--:|--:|--:|--:|",
        "| `vit_small_patch16_224` | 9.20 | sdpa 12/12, qkv 12/12 | 1.00 (0.80–1.50) | 0.50 (0.50–0.50) "
        "| 0.75 (0.75–0.75) | 0.50 (0.50–0.50) | 40% / 40% | 200% / 100% |"]
    assert lines[4] == ("- ratio = vitdsl / timm per round, median (range below) over 3 rounds: < 1.0 means vitdsl "
                        "is faster (or, for train mem, uses less)")
    assert "10.0 GFLOP/s (1024x1024 matmul; 8.0 after the models)" in lines[5]
    assert "- torch.compile time, s (vitdsl / timm; the first call): vit_small_patch16_224 eval 40 / 20" in lines
    assert "- torch.compile graph breaks: vit_small_patch16_224 (timm: 2)" in lines
    assert not any("busy" in line for line in lines)


def test_the_notes_say_where_the_sides_ran():
    report = fabricated()
    report["meta"]["processes"] = "each side in its own process (sides.py)"
    assert to_markdown(report).splitlines()[4].endswith("uses less); each side in its own process (sides.py)")


def test_a_busy_cpu_is_noted():
    assert "note: a model's round times varied 2.0x: the CPU was busy" in to_markdown(fabricated((0.5, 1.0, 0.5)))


def test_the_rich_tables_render_the_ratios_and_the_absolute_times():
    console = Console(file=io.StringIO(), width=250, color_system=None)
    for part in render(fabricated()):
        console.print(part)
    text = console.file.getvalue()
    assert "ratio < 1.0 means vitdsl is faster" in text
    assert "0.80-1.50" in text  # the range under the median
    assert "500.0 / 500.0" in text and "2000.0 / 4000.0" in text and "3 / 4" in text  # ms, ms, MiB


def test_the_report_is_json():
    report = fabricated()
    assert json.loads(json.dumps(report)) == report


def test_levers_are_read_off_one_forward(monkeypatch):
    from vitdsl.blocks.modules import onednn

    tiny = vitdsl.build("vit", overrides={"image_size": 32, "patch": 4, "dim": 32, "depth": 3, "heads": 2,
                                          "dim_head": 16, "mlp": 64, "classes": 10})
    x = torch.randn(1, 3, 32, 32)
    found = levers(tiny, x)
    # 13 Linear calls on oneDNN: the patch embedding's and 12 in the blocks, 9 of those with the GELU or the
    # residual add fused (fc1; fc2 and the attention's output projection); the head's not
    assert found == {"sdpa_calls": 3, "conv2d_calls": 0, "channels_last_conv2d_calls": 0, "attention_modules": 3,
                     "attention_calls": 3, "fused_qkv_modules": 3, "read_rows_calls": 1, "onednn_linears": 13,
                     "fused_epilogues": 9, "linears": 14, "depthwise_ops": 0}
    assert lever_words(found) == "sdpa 3/3, qkv 3/3, rows 1, onednn 13/14 (fused 9)"
    with explicit_attention(model=tiny):
        assert lever_words(levers(tiny, x)) == "sdpa 0/3, qkv 3/3, rows 1, onednn 13/14 (fused 9)"
    tiny.skip_unread_tokens = False
    monkeypatch.setattr(onednn, "ONEDNN", False)
    assert lever_words(levers(tiny, x)) == "sdpa 3/3, qkv 3/3"
    conv = nn.Conv2d(3, 4, 3)
    assert lever_words(levers(conv, x)) == "cl 0/1"
    assert lever_words(levers(conv, x.contiguous(memory_format=torch.channels_last))) == "cl 1/1"


def test_depthwise_convolutions_that_compiled_training_runs_as_the_op_are_counted():
    # vit-pytorch's PVT v2 example: eight blocks, each MLP with a depthwise convolution over its hidden map
    found = levers(vitdsl.build("blueprints/pvt_v2.yaml"), torch.randn(1, 3, 224, 224))
    assert found["depthwise_ops"] == 8 and lever_words(found).endswith(", dw-op 8")


def test_sliced_mlps_are_counted_at_a_batch(monkeypatch):
    import vitdsl.blocks.modules.mlp as mlp_module

    tiny = vitdsl.build("swin", overrides={"image_size": 32, "patch": 2, "dims": [8, 16], "depths": [2, 2],
                                           "dim_head": 4, "window": 4, "classes": 10})
    x = torch.randn(2, 3, 32, 32)
    assert sliced_mlps(tiny, x) == 0
    # the first stage: 2·16·16 tokens × 32 × 4 bytes = 64 KiB of hidden, in slices of 128 tokens; the second: 32 KiB
    monkeypatch.setattr(mlp_module, "SLICE_ABOVE", 32 << 10)
    monkeypatch.setattr(mlp_module, "SLICE_BYTES", 16 << 10)
    monkeypatch.setattr(mlp_module, "SLICE_ROWS", 16)
    assert sliced_mlps(tiny, x) == 2
    assert lever_words({"sliced_mlp_calls": 2, "sliced_at_batch": 8}) == "slices 2 (b8)"


def test_recomputing_blocks_are_counted_in_a_training_forward():
    import vitdsl.blocks.modules.mlp as mlp_module

    tiny = vitdsl.build("vit", overrides={"image_size": 32, "patch": 4, "dim": 32, "depth": 3, "heads": 2,
                                          "dim_head": 16, "mlp": 64, "classes": 10})
    assert recomputing_blocks(tiny, torch.randn(1, 3, 32, 32)) == (6, 6, 0)
    assert not tiny.training
    # Swin's attention has a relative position bias with a gradient: on CPU the explicit softmax, kept whole
    swin = vitdsl.build("swin", overrides={"image_size": 32, "patch": 2, "dims": [8, 16], "depths": [2, 2],
                                           "dim_head": 4, "window": 4, "classes": 10})
    assert recomputing_blocks(swin, torch.randn(2, 3, 32, 32)) == (4, 8, 0)
    assert lever_words({"recomputing_blocks": 4, "residual_blocks": 8}) == "recompute 4/8"
    # the first stage's two MLPs train in slices (64 KiB of hidden, 16 KiB a slice): still a block each
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(mlp_module, "SLICE_ABOVE", 32 << 10)
        mp.setattr(mlp_module, "TRAIN_SLICE_BYTES", 16 << 10)
        mp.setattr(mlp_module, "SLICE_ROWS", 16)
        assert recomputing_blocks(swin, torch.randn(2, 3, 32, 32)) == (4, 8, 2)
    assert lever_words({"train_sliced_mlp_calls": 2, "train_sliced_at_batch": 16}) == "train slices 2 (b16)"
    norm = nn.BatchNorm2d(3)  # the training forward's statistics are put back
    assert recomputing_blocks(norm, torch.randn(2, 3, 4, 4) + 5) == (0, 0, 0)
    assert torch.equal(norm.running_mean, torch.zeros(3)) and norm.num_batches_tracked.item() == 0


def test_the_peak_rss_of_a_call_is_what_it_allocated():
    peak = PeakRSS()
    if not sys.platform.startswith("linux"):
        assert peak.reason.startswith("peak RSS needs Linux's /proc/self/clear_refs")
        return
    assert peak.reason is None
    for _ in range(2):  # the second time, the first buffer's pages must not count
        peak.before("x")
        buffer = torch.ones(16 * MiB)  # 64 MiB
        del buffer
        peak.after("x")
    assert all(abs(p - 64 * MiB) < 4 * MiB for p in peak.peaks["x"]), peak.peaks


def test_the_gemm_rate_is_that_of_the_fastest_lap():
    assert gemm_rate(1000, [2.0, 0.5, 1.0]) == 4e9


def test_options():
    from versus_timm import MODELS, parse

    a = parse(["--quick", "--no-compile"])
    assert (a.models, a.rounds, a.iters, a.eval_batches, a.train_batch, a.compile) == \
        (list(MODELS), 2, 1, [1, 2], 2, False)
    a = parse(["--models", "pvt_v2_b1,swin_tiny_patch4_window7_224", "--eval-batches", "4"])
    assert (a.models, a.rounds, a.eval_batches, a.train_batch, a.compile) == \
        (["pvt_v2_b1", "swin_tiny_patch4_window7_224"], 7, [4], 16, True)


def test_an_unknown_model_is_refused(capsys):
    from versus_timm import parse

    with pytest.raises(SystemExit):
        parse(["--models", "vit_small_patch16_224,resnet50"])
    assert "error: not a timm model the zoo reproduces: resnet50" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parse(["--no-eager", "--no-compile"])
    assert "error: --no-eager and --no-compile leave nothing to measure" in capsys.readouterr().err


def test_each_side_runs_in_a_process_of_its_own():
    from sides import MEMORY_CALLS, SIDES, SideError, Sides

    with Sides("vit_tiny_patch16_224", threads=1) as sides:
        pids = sides.both("pid")
        assert len({*pids.values()}) == 2 and os.getpid() not in pids.values()
        x = torch.randn(2, 3, 224, 224)
        outputs = sides.both("forward", x, False)
        assert (outputs["vitdsl"] - outputs["timm"]).abs().max() < 1e-4
        sides.both("eval", "eval b2", x)
        times, peaks = sides.interleave("eval b2", rounds=3, iters=2, warmup=1)
        assert peaks is None and all(len(times[s]) == 3 and min(times[s]) > 0 for s in SIDES)
        # memory in calls of its own, after the timed rounds: its probe empties the heap before each call
        sides.both("train", "train b2", x, torch.tensor([0, 1]))
        times, peaks = sides.interleave("train b2", rounds=2, iters=1, warmup=0, memory=True)
        assert all(len(times[s]) == 2 and len(peaks[s]) == MEMORY_CALLS and min(peaks[s]) > 0 for s in SIDES)
        assert sides.ask("vitdsl", "levers", x[:1])["heap_kept"] == 1  # it built a vitdsl model on the CPU
        assert sides.ask("timm", "levers", x[:1])["heap_kept"] == 0
        with pytest.raises(SideError, match="(?s)the timm process failed:\n.*KeyError: 'eval b8'"):
            sides.ask("timm", "laps", "eval b8", 1)
        assert sides.ask("timm", "pid") == pids["timm"]  # an error ends the request, not the process
    assert not any(p.is_alive() for p in sides.procs.values())


def test_a_failed_side_is_one_error_line_and_exit_code_2(monkeypatch, capsys):
    import versus_timm
    from sides import SideError

    def fail(self):
        raise SideError("vit_tiny_patch16_224: the timm process died (exit code -9)")

    monkeypatch.setattr(versus_timm.Bench, "run", fail)
    assert versus_timm.main(["--models", "vit_tiny_patch16_224", "--quick"]) == 2
    assert capsys.readouterr().err.endswith(
        "error: vit_tiny_patch16_224: the timm process died (exit code -9)\n")


def test_batches_and_rounds_must_be_positive(capsys):
    from versus_timm import parse

    with pytest.raises(SystemExit) as exit_info:
        parse(["--eval-batches", "0"])
    assert exit_info.value.code == 2
    assert "error: batch sizes, --rounds and --iters must be at least 1" in capsys.readouterr().err

