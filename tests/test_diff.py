"""``vitdsl diff``: two designs compared per stage from the shape rules, repeat iterations folded."""
import json
import subprocess
import sys

import vitdsl
from vitdsl.cli import main
from vitdsl.graph.build import info
from vitdsl.graph.diff import diff, folded


def test_a_deeper_stage_is_its_added_iterations():
    stages = {s.name: s for s in diff(vitdsl.validate("swin", "tiny"), vitdsl.validate("swin", "small"))}
    assert [name for name, s in stages.items() if s.blocks] == ["stages.2"]
    s = stages["stages.2"]
    assert (s.a.params, s.b.params, s.b.params - s.a.params) == (10_955_400, 32_273_304, 21_317_904)
    assert [c.text() for c in s.blocks] == ["+ stages.2.blocks.*.attn (local-attn) ×6 → ×18",
                                            "+ stages.2.blocks.*.ff (mlp) ×6 → ×18"]


def test_changed_fields_added_and_removed_blocks():
    a, b = vitdsl.validate("vit"), vitdsl.validate("simple_vit", overrides={"depth": 4})
    stages = diff(a, b)
    texts = {s.name: [c.text() for c in s.blocks] for s in stages}
    assert texts["tokens"] == ["- tokens (tokens)"]
    assert texts["pool"] == ["~ pool (pool): mode: cls → mean, over: patches → all"]  # the overlay's mean
    assert texts["blocks"][0] == ("~ blocks.*.attn (global-attn) ×6 → ×4: attn_dropout: 0.1 → 0.0, dropout: 0.1 → "
                                  "0.0, out_bias: true → false, project_out: auto → always")
    assert sum(s.a.params for s in stages if s.a) == info(a)["params"]
    assert sum(s.b.params for s in stages if s.b) == info(b)["params"]
    assert [s.name for s in stages if s.b is None] == ["tokens"]


def test_another_block_in_its_place_and_stages_only_one_side_has():
    stages = diff(vitdsl.validate("vit"), vitdsl.validate("deit"))
    assert [s.name for s in stages][-4:] == ["pool_0", "pool_1", "distill_head", "merge"]  # DeiT's two heads
    assert all(s.a is None for s in stages[-4:])


def test_folding_names_every_iteration_of_nested_repeats():
    assert folded("a.0.b.1.x", (("a", 0), ("a.0.b", 1))) == "a.*.b.*.x"
    assert folded("stages.2.blocks.5.attn", (("stages.2.blocks", 5),)) == "stages.2.blocks.*.attn"


def test_the_command_prints_a_table_or_json_and_needs_no_torch(capsys):
    assert main(["diff", "swin:tiny", "swin:small"]) == 0
    out = capsys.readouterr().out
    assert "swin:tiny → swin:small" in out and "+21,317,904" in out and "28,288,354 → 49,606,258" in out
    assert main(["diff", "vit", "vit", "--set-b", "depth=2", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    blocks = next(s for s in data["stages"] if s["stage"] == "blocks")
    assert (blocks["a"]["times"], blocks["b"]["times"]) == (6, 2)
    assert blocks["blocks"][0]["change"] == "removed" and blocks["blocks"][0]["iterations"] == [6, 2]
    assert main(["diff", "swin:tinyy", "vit"]) == 2
    assert capsys.readouterr().err.startswith("error: blueprint 'swin' has no variant 'tinyy'")
    code = "import sys, vitdsl.cli; vitdsl.cli.main(['diff', 'vit', 'deit', '--json']); print('torch' in sys.modules)"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.stdout.rstrip().endswith("False"), run.stderr
