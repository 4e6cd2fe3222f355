"""vitdsl.sweep and `vitdsl summary --sweep`: a design's costs per stage across input sizes, each size set through
the blueprint's image_size and traced as vitdsl.summary traces it."""
from __future__ import annotations

import json
import re

import pytest

import vitdsl
from vitdsl.blueprint.load import find
from vitdsl.cli import main


@pytest.fixture(scope="module")
def vit_b16():
    return vitdsl.sweep("vit", sizes=[224, 384], variant="base")


@pytest.fixture(scope="module")
def swin_t():
    return vitdsl.sweep("swin", sizes=[224, 384, 448], variant="tiny")


def tokens(sw, size: int) -> dict[str, int | None]:
    point = next(p for p in sw.points if p.size == size)
    return {s.name: s.tokens for s in point.stages}


def test_vit_b16_tokens_per_stage(vit_b16):
    assert tokens(vit_b16, 224) == {"patchify": 196, "tokens": 197, "pos_embed": 197, "blocks": 197, "norm": 197,
                                    "pool": None, "head": None}
    assert tokens(vit_b16, 384)["blocks"] == 577
    assert [p.input for p in vit_b16.points] == [(3, 224, 224), (3, 384, 384)]
    assert vit_b16.points[0].stage("blocks").times == 12


def test_flops_are_the_summarys_at_each_size(vit_b16):
    for point in vit_b16.points:
        summary = vitdsl.summary("vit", "base", {"image_size": point.size})
        assert point.total_flops == summary.total_flops and point.total_macs == summary.total_macs
        blocks = sum(r.flops for r in summary.rows if r.path.startswith("blocks."))
        assert point.stage("blocks").flops == blocks
    assert vit_b16.points[0].total_flops == 35_127_656_448  # 17.56 GMACs: timm's 17.6 for vit_base_patch16_224


def test_global_attention_weights_are_heads_times_tokens_squared(vit_b16):
    for point, n in zip(vit_b16.points, (197, 577)):
        blocks = point.stage("blocks").to_dict()
        assert blocks["attn_layer_bytes"] == 12 * n * n * 4  # one layer: 12 heads × N × N float32
        assert blocks["attn_bytes"] == 12 * blocks["attn_layer_bytes"]  # 12 layers
    growth = vit_b16.to_dict()["growth"]
    assert growth["stages"]["blocks"]["attn_layer"]["ratio"] == (577 / 197) ** 2
    assert round(growth["stages"]["blocks"]["attn_layer"]["exponent"], 3) == 1.994  # the cls token: not quite 2


def test_swin_t_stage_tokens_and_windowed_growth(swin_t):
    assert [tokens(swin_t, 224)[f"stages.{i}"] for i in range(4)] == [3136, 784, 196, 49]
    assert [tokens(swin_t, 448)[f"stages.{i}"] for i in range(4)] == [12544, 3136, 784, 196]
    first = swin_t.points[0].stage("stages.0").to_dict()
    assert first["attn_layer_bytes"] == 64 * 3 * 49 * 49 * 4  # 8×8 windows of 7×7, 3 heads
    growth = swin_t.to_dict()["growth"]  # from 224 to 448, 384 left out: linear, 4× the windows
    assert (growth["from"], growth["to"]) == (224, 448)
    assert {s: growth["stages"][f"stages.{s}"]["attn_layer"]["ratio"] for s in range(4)} == {0: 4, 1: 4, 2: 4, 3: 4}
    assert growth["stages"]["stages.0"]["attn_layer"]["exponent"] == 1.0


def test_a_size_the_design_cannot_take_is_its_columns_error(swin_t):
    where = find("swin")
    line = next(i for i, text in enumerate(where.read_text().splitlines(), 1) if "- local-attn: {window" in text)
    assert swin_t.points[1].stages == [] and swin_t.points[1].to_dict() == {"size": 384, "error": (
        f"{where}:{line}:25: stages.0.blocks.0.attn: window 7 does not divide the feature map 96×96 (height 96) "
        "(input here: image 96×96×96)\n  hint: windows that fit 96×96: 1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 96; "
        "square input sizes that work (up to 1024): multiples of 224 from 224 to 896")}
    text = str(swin_t)
    assert f"at 384×384: {where}:{line}:25: stages.0.blocks.0.attn: window 7 does not divide" in text
    assert re.search(r"stages\.0 +│ +3,136 │ +error │ +12,544 │ +×4\.00 · N\^1\.00 │", text)


def test_the_cli_prints_the_tables_and_json(capsys):
    args = ["summary", "vit", "-v", "tiny", "--set", "depth=1", "--sweep", "224,384"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert out.startswith("vit (tiny): image inputs of 224×224, 384×384\nTokens per image at each stage's output")
    assert re.search(r"│ blocks +│ +197 │ +577 │ +×2\.93 · N\^1\.00 │", out)
    assert re.search(r"│ blocks +│ +0\.47 │ +4\.00 │ +×8\.58 · N\^1\.99 │", out)  # 3 heads × 197² × 4 bytes
    assert "total GMACs" in out and "growth 224→384" in out
    assert main([*args, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["sizes"] == [224, 384] and data["variant"] == "tiny"
    blocks = data["points"][1]["stages"][3]
    assert (blocks["name"], blocks["tokens"], blocks["attn_layer_bytes"]) == ("blocks", 577, 3 * 577 * 577 * 4)
    assert data["points"][1]["total_macs"] * 2 == data["points"][1]["total_flops"]


def test_bad_sizes_are_refused(capsys):
    assert main(["summary", "vit", "--sweep", "224,x"]) == 2
    assert capsys.readouterr().err == ("error: --sweep takes input sizes separated by commas, got '224,x'\n"
                                       "  hint: e.g. --sweep 224,384,512\n")
    with pytest.raises(vitdsl.VitdslError, match=r"^the sweep takes one or more input sizes, whole numbers of at "
                                                 r"least 1, got \[224, 0\]"):
        vitdsl.sweep("vit", sizes=[224, 0])
    with pytest.raises(vitdsl.VitdslError, match=r"^the sweep applies to architectures; 'dino' is an objective "
                                                 r"blueprint\n  hint: sweep its encoder's blueprint$"):
        vitdsl.sweep("objectives/dino", sizes=[224])
