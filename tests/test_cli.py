"""The command line: each command works, has help, and prints what the brief promises."""
import json
import subprocess
import sys

import pytest

from vitdsl.blueprint.load import zoo_names
from vitdsl.cli import main, parser

COMMANDS = ["build", "summary", "validate", "list", "schema"]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as e:
        main([command, "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: vitdsl {command}")
    help_of = {a.dest: a.help for a in parser()._subparsers._group_actions[0].choices[command]._actions}
    assert all(text for dest, text in help_of.items()), help_of


def test_top_level_help_lists_the_commands(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for command in COMMANDS:
        assert command in out


def test_build_prints_the_maxvit_summary(capsys):
    assert main(["build", "blueprints/maxvit.yaml"]) == 0
    out = capsys.readouterr().out
    assert out.rstrip().endswith("Total params: 79,981,380")
    assert "stages.2.blocks.1–4" in out and "×4, identical" in out
    assert "window 7×7" in out and "grid 7×7" in out
    assert "Total FLOPs: 23.06 GFLOPs per image (23,056,035,840;" in out


def test_build_saves_a_checkpoint_that_rebuilds(tmp_path, capsys):
    path = tmp_path / "vit.pt"
    assert main(["build", "vit", "--set", "depth=1", "--save", str(path)]) == 0
    import vitdsl

    model = vitdsl.load_checkpoint(path)
    assert model.blueprint.params["depth"] == 1


def test_summary_json_and_variant(capsys):
    assert main(["summary", "maxvit", "--variant", "tiny", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["name"] == "maxvit" and data["output"] == [1000]
    assert data["total_params"] == sum(b["params"] for b in data["blocks"])


def test_validate_reports_counts_and_sizes(capsys):
    assert main(["validate", "vit", "--set", "classes=10"]) == 0
    out = capsys.readouterr().out
    fewer = 990 * (1024 + 1)  # 990 fewer classes in the head
    assert out.splitlines()[:4] == [
        "ok: vit — 18 blocks, image 3×256×256 → vector 10",
        f"  params: {54_630_376 - fewer:,} (from the shape rules)",
        f"  FLOPs:  {7_051_649_024 - 2 * 990 * 1024:,} per image",
        "  square input sizes that work (up to 1024): multiples of 32 from 32 to 1024",
    ]


def test_list_shows_the_zoo(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for name in ("vit", "simple_vit", "maxvit"):
        assert name in out
    assert "79,981,380" in out
    assert main(["list", "--names"]) == 0
    from vitdsl.blueprint.load import objective_names

    assert capsys.readouterr().out.split() == zoo_names(examples=True) + objective_names()
    assert "examples/maxvit_cait" in zoo_names(examples=True)
    assert "objectives/mae" in objective_names()


def test_schema_writes_the_file_it_would_print(tmp_path, capsys):
    """What the schema accepts and where it reports errors: tests/test_schema.py."""
    assert main(["schema", "--output", str(tmp_path / "s.json")]) == 0
    assert json.loads((tmp_path / "s.json").read_text())["title"] == "vitdsl blueprint"
    assert main(["schema", "--output", str(tmp_path / "missing" / "s.json")]) != 0
    assert capsys.readouterr().err.startswith(f"error: cannot write '{tmp_path / 'missing' / 's.json'}': ")


def test_console_script_is_installed():
    run = subprocess.run([sys.executable, "-m", "vitdsl", "validate", "simple_vit"], capture_output=True, text=True)
    assert run.returncode == 0 and run.stdout.startswith("ok: simple_vit")
