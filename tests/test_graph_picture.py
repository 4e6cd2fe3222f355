"""`vitdsl graph`: pictures of the checked graph without torch, repeats folded as in the summary."""
import shutil
import subprocess
import sys

import pytest

import vitdsl
from vitdsl.cli import main
from vitdsl.trace import picture as pic

DIGITS = '''---
title: "digits_vit"
---
flowchart TB
  input(["<b>input</b><br/>image 1×8×8"])
  n1["<b>patchify</b><br/>patch 4×4, stride 2×2, padding 1×1<br/>tokens 16×64"]
  n2["<b>pos_embed</b><br/>learned<br/>tokens 16×64"]
  subgraph r1["blocks.0–1  ×2, identical"]
    direction TB
    n3["<b>attn</b><br/>global-attn: global<br/>tokens 16×64"]
    n4["<b>ff</b><br/>mlp<br/>tokens 16×64"]
  end
  n5["<b>norm</b><br/>layer<br/>tokens 16×64"]
  n6["<b>pool</b><br/>mean<br/>vector 64"]
  n7["<b>head</b><br/>vector 10"]
  output(["<b>output</b><br/>vector 10"])
  input --> n1
  n1 --> n2
  n2 --> n3
  n3 --> n4
  n4 --> n5
  n5 --> n6
  n6 --> n7
  n7 --> output
'''

PARALLEL = """name: two_heads
input: {image: [3, 32, 32]}
layers:
  - patchify: {patch: 8, dim: 32}
  - repeat: 2
    layers:
      - parallel: 2
        name: attn
        residual: true
        layers:
          - global-attn: {heads: 2, dim_head: 16, residual: false}
  - pool: mean
  - head: {classes: 10}
"""


def test_a_small_blueprints_mermaid_word_for_word(capsys):
    assert main(["graph", "examples/digits_vit.yaml"]) == 0
    assert capsys.readouterr().out == DIGITS


def test_branches_and_the_residual_are_drawn_into_their_merge(tmp_path, capsys):
    (tmp_path / "two.yaml").write_text(PARALLEL)
    assert main(["graph", str(tmp_path / "two.yaml"), "--format", "dot"]) == 0
    out = capsys.readouterr().out
    assert '    n4 [label=<<b>attn.merge</b><br/>add<br/><font color="#4a5a78">tokens 16×32</font>>];' in out
    # two branches off the patches, both into the merge, and the residual straight from the patches into it
    edges = [line.strip() for line in out.splitlines() if "->" in line]
    assert edges == ["input -> n1;", "n1 -> n2;", "n1 -> n3;", "n1 -> n4;", "n2 -> n4;", "n3 -> n4;",
                     "n4 -> n5;", "n5 -> n6;", "n6 -> output;"]


def test_vit_folds_its_twelve_blocks_into_one_frame():
    p = pic.picture(vitdsl.validate("vit", "base"), "vit")
    names = [b.lines[0] for b in p.boxes]
    assert names == ["input", "patchify", "tokens", "pos_embed", "attn", "ff", "norm", "pool", "head", "output"]
    frames = [m for m in p.members if isinstance(m, pic.Frame)]
    assert [f.label for f in frames] == ["blocks.0–11  ×12, identical"]
    assert [b.lines[0] for b in frames[0].members] == ["attn", "ff"]
    assert len(p.edges) == 9  # a chain: no edge from the last iteration back to the first
    text = pic.mermaid(p)
    assert text.count("-->") == 9 and text.count("subgraph") == 1
    assert 'n4["<b>attn</b><br/>global-attn: global<br/>tokens 197×768"]' in text


def test_expand_draws_every_iteration_in_a_frame_of_its_own():
    p = pic.picture(vitdsl.validate("vit", "base"), "vit", folded=False)
    frames = [m for m in p.members if isinstance(m, pic.Frame)]
    assert [f.label for f in frames] == [f"blocks.{i}" for i in range(12)]
    assert len(p.boxes) == 8 + 24 and len(p.edges) == 8 + 24 - 1


def test_cross_vit_draws_two_parallel_paths_that_cross_and_merge():
    p = pic.picture(vitdsl.validate("cross_vit"), "cross_vit")
    box = {b.lines[0]: b.id for b in p.boxes}
    into = {b: sorted(u for u, v in p.edges if v == box[b]) for b in box}
    assert into["embed.sm.patchify"] == into["embed.lg.patchify"] == ["input"]  # the image feeds both paths
    assert into["readout.merge"] == sorted([box["readout.sm.head"], box["readout.lg.head"]])
    # each cross-attention reads both branches' tokens; the iterations' chaining is left to the frame's ×2
    both = sorted([box["transformer.sm.norm"], box["transformer.lg.norm"]])
    assert into["branches.sm.cross_attn"] == into["branches.lg.cross_attn"] == both
    outer = next(m for m in p.members if isinstance(m, pic.Frame))
    assert outer.label == "encoder.0–3  ×4, identical"
    assert [m.label for m in outer.members if isinstance(m, pic.Frame)] == [
        "transformer.sm.blocks.0–1  ×2, identical", "transformer.lg.blocks.0–2  ×3, identical",
        "cross.0–1  ×2, identical"]
    assert [b.lines[1:] for b in p.boxes if b.lines[0] == "branches.lg.cross_attn"] == [
        ["cross: 1 cls → 256 context", "tokens 17×384"]]  # a cross_attn is a cross-attn: said once


def test_maxvit_and_twins_crossformer_fold_as_their_summaries_do():
    frames = [m.label for m in pic.picture(vitdsl.validate("maxvit"), "maxvit").members
              if isinstance(m, pic.Frame)]
    assert frames == ["stages.0.blocks.0", "stages.0.blocks.1", "stages.1.blocks.0", "stages.1.blocks.1",
                      "stages.2.blocks.0", "stages.2.blocks.1–4  ×4, identical", "stages.3.blocks.0",
                      "stages.3.blocks.1"]
    p = pic.picture(vitdsl.validate("examples/twins_crossformer"), "twins")
    box = {b.lines[0]: b for b in reversed(p.boxes)}  # the first box of each name
    assert box["local_attn"].lines == ["local_attn", "window 7×7, dynamic bias", "image 64×56×56"]
    merge = box["stages.0.embed.merge"].id
    assert sorted(u for u, v in p.edges if v == merge) == sorted(box[f"stages.0.embed.{i}.conv"].id for i in range(4))


def test_an_objective_is_drawn_as_its_encoder(capsys):
    assert main(["graph", "objectives/mae", "-f", "mermaid"]) == 0
    assert capsys.readouterr().out.startswith('---\ntitle: "mae — encoder"\n---\nflowchart TB\n')


def test_the_html_page_embeds_the_mermaid_text_and_says_where_mermaid_js_comes_from(tmp_path):
    assert main(["graph", "examples/digits_vit.yaml", "-f", "html", "-o", str(tmp_path / "g.html")]) == 0
    page = (tmp_path / "g.html").read_text()
    assert '<pre class="mermaid">\n' + DIGITS.replace("&", "&amp;").replace("<", "&lt;").replace(
        ">", "&gt;").replace('"', "&quot;").replace("'", "&#x27;") + "</pre>" in page
    assert "Drawn by mermaid.js, which this page loads from the jsDelivr CDN when it opens." in page


def test_svg_without_graphviz_says_how_to_install_it(monkeypatch, capsys):
    monkeypatch.setattr(pic.shutil, "which", lambda name: None)
    assert main(["graph", "vit", "--format", "svg"]) == 2
    assert capsys.readouterr().err == (
        "error: --format svg needs Graphviz's 'dot' program, which is not installed (or not on PATH)\n"
        "  hint: install Graphviz: 'apt install graphviz' (Debian, Ubuntu), 'brew install graphviz' (macOS) or "
        "'conda install graphviz'; or write '--format dot' and lay it out elsewhere, or '--format mermaid' / "
        "'--format html'\n")


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz is not installed")
def test_svg_is_laid_out_by_graphviz(capsys):
    assert main(["graph", "cross_vit", "--format", "svg"]) == 0
    out = capsys.readouterr().out
    assert out.lstrip().startswith("<?xml") and "<svg" in out and "readout.merge" in out


def test_drawing_never_imports_torch(tmp_path):
    code = ("import sys; from vitdsl.cli import main; "
            f"assert main(['graph', 'cross_vit', '-f', 'dot', '-o', {str(tmp_path / 'g.dot')!r}]) == 0; "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True)
    assert (tmp_path / "g.dot").read_text().startswith('digraph "cross_vit" {')


def test_graph_has_help(capsys):
    with pytest.raises(SystemExit) as e:
        main(["graph", "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: vitdsl graph") and "--format {mermaid,dot,svg,html}" in out
