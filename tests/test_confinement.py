"""The files a blueprint may name, the values that come from the command line, and what errors echo.

A blueprint may name files in the zoo, the working directory, the folder of the blueprint the user named
and folders granted with ``--allow-path``; anything else is refused without a word of its content.
"""
from __future__ import annotations

import os

import pytest

import vitdsl
from vitdsl import VitdslError
from vitdsl.cli import main

SECRET = "TOKEN=hunter2"
TINY = "name: tiny\ninput: {tokens: [4, 8]}\nparams: {mult: 2}\nlayers:\n  - mlp: {mult: $mult}\n    name: ff\n"


@pytest.fixture
def tree(tmp_path, monkeypatch):
    """tmp/work (the working directory), tmp/proj (the user's blueprints), tmp/secret.yaml outside both."""
    work, proj = tmp_path / "work", tmp_path / "proj"
    work.mkdir()
    proj.mkdir()
    (tmp_path / "secret.yaml").write_text(f"{SECRET}\n")
    (tmp_path / "secret.txt").write_text(f"{SECRET}\n")
    (proj / "base.yaml").write_text(TINY)
    monkeypatch.chdir(work)
    return tmp_path


def _cli(argv, capsys):
    code = main(argv)
    out = capsys.readouterr()
    return code, out.out + out.err


@pytest.mark.parametrize("ref", ["../secret.yaml", "../secret.txt", "{tmp}/secret.yaml", "/etc/passwd",
                                 "/proc/self/environ", "../../../../../../etc/hostname"])
def test_extends_outside_the_roots_is_refused_without_disclosure(tree, capsys, ref):
    bp = tree / "proj" / "child.yaml"
    ref = ref.format(tmp=tree)
    bp.write_text(f"extends: {ref}\nname: child\n")
    code, out = _cli(["validate", str(bp)], capsys)
    assert code == 2
    assert out.startswith(f"error: {bp}:1:10: the blueprint '{ref}' is outside the folders a blueprint may read")
    assert "--allow-path DIR" in out
    assert SECRET not in out and "root:" not in out and "PATH=" not in out


def test_a_symbolic_link_out_of_the_roots_is_refused(tree, capsys):
    (tree / "proj" / "link.yaml").symlink_to(tree / "secret.yaml")
    (tree / "proj" / "child.yaml").write_text("extends: link.yaml\nname: child\n")
    code, out = _cli(["validate", str(tree / "proj" / "child.yaml")], capsys)
    assert code == 2 and "the blueprint 'link.yaml' is outside the folders" in out and SECRET not in out


def test_files_in_the_roots_and_granted_folders_are_read(tree, capsys):
    (tree / "lib").mkdir()
    (tree / "lib" / "shared.yaml").write_text(TINY)
    child = tree / "proj" / "child.yaml"
    child.write_text("extends: ../lib/shared.yaml\nname: child\n")
    with pytest.raises(VitdslError, match="outside the folders"):
        vitdsl.load(child)
    assert vitdsl.load(child, allow_paths=[tree / "lib"]).name == "child"
    code, out = _cli(["validate", str(child), "--allow-path", str(tree / "lib")], capsys)
    assert code == 0, out
    (tree / "proj" / "sibling.yaml").write_text("extends: base.yaml\nname: sibling\n")  # the named file's folder
    (tree / "work" / "local.yaml").write_text(TINY)  # the working directory
    (tree / "proj" / "cwd.yaml").write_text(f"extends: {tree / 'work' / 'local.yaml'}\nname: cwd\n")
    assert vitdsl.load(tree / "proj" / "sibling.yaml").name == "sibling"
    assert vitdsl.load(tree / "proj" / "cwd.yaml").name == "cwd"
    code, out = _cli(["validate", "vit", "--allow-path", str(tree / "nowhere")], capsys)
    assert code == 2 and "--allow-path" in out and "is not a folder" in out


def test_the_roots_are_those_of_the_top_level_file_not_of_each_extended_one(tree):
    """proj/a extends proj/sub/b, which may not climb out of proj with '..' twice."""
    (tree / "proj" / "sub").mkdir()
    (tree / "proj" / "sub" / "b.yaml").write_text("extends: ../../secret.yaml\nname: b\n")
    (tree / "proj" / "a.yaml").write_text("extends: sub/b.yaml\nname: a\n")
    with pytest.raises(VitdslError, match="the blueprint '../../secret.yaml' is outside"):
        vitdsl.load(tree / "proj" / "a.yaml")


def test_zoo_names_cannot_climb_out_of_the_zoo(tree):
    (tree / "proj" / "c.yaml").write_text("extends: ../../../../../../../../" + str(tree)[1:] + "/secret\nname: c\n")
    with pytest.raises(VitdslError, match="is outside the folders a blueprint may read"):
        vitdsl.load(tree / "proj" / "c.yaml")


def test_objective_encoder_and_teacher_files_are_confined(tree):
    mae = tree / "proj" / "mae.yaml"
    mae.write_text("name: m\nencoder: ../secret.yaml\nobjective: {mae: {}}\n")
    with pytest.raises(VitdslError, match="the blueprint '../secret.yaml' is outside") as e:
        vitdsl.validate(mae)
    assert str(e.value.location) == f"{mae}:2:10"
    distill = tree / "proj" / "distill.yaml"
    distill.write_text("extends: objectives/distill\nname: d\nobjective:\n  distill:\n"
                       "    teacher: {blueprint: vit, weights: ../secret.txt}\n")
    with pytest.raises(VitdslError, match="the teacher weights file '../secret.txt' is outside"):
        vitdsl.validate(distill)


def test_odd_files_and_names_are_one_clear_error(tree, capsys):
    proj = tree / "proj"
    (proj / "bin.yaml").write_bytes(b"name: x\n\x00\x01\x02")
    (proj / "latin1.yaml").write_bytes("name: caf\xe9\n".encode("latin-1"))
    (proj / "dir.yaml").mkdir()
    (proj / "long.yaml").write_text("extends: " + "a" * 5000 + "\nname: x\n")
    (proj / "nul.yaml").write_text("extends: \"a\\0b\"\nname: x\n")
    (proj / "toself.yaml").write_text("extends: toself.yaml\nname: x\n")
    for name, message in {"bin.yaml": "is a binary file, not YAML text",
                          "latin1.yaml": "is not UTF-8 text (byte 9 cannot be read)"}.items():
        with pytest.raises(VitdslError, match=message.replace("(", r"\(").replace(")", r"\)")):
            vitdsl.validate(proj / name)
    expected = {"bin.yaml": "is neither a blueprint (YAML text) nor a vitdsl checkpoint",  # the CLI also
                "latin1.yaml": "is neither a blueprint (YAML text) nor a vitdsl checkpoint",  # tries checkpoints
                "long.yaml": "the blueprint name is 5,000 characters long, more than 1,024",
                "nul.yaml": "holds a NUL character",
                "toself.yaml": "'extends' forms a cycle"}
    for name, message in expected.items():
        code, out = _cli(["validate", str(proj / name)], capsys)
        assert code == 2 and message in out and "Traceback" not in out, (name, out)
    code, out = _cli(["validate", str(proj / "dir.yaml")], capsys)
    assert code == 2 and "not a file and not in the zoo" in out
    code, out = _cli(["validate", str(proj / "toself.yaml")], capsys)
    assert f"{proj / 'toself.yaml'}:1:10" in out  # the cycle points at its extends line


def test_command_line_values_are_located_by_option_not_by_a_file_line(capsys):
    code, out = _cli(["validate", "vit", "--set", "dim=${9**9**9}"], capsys)
    assert code == 2
    assert out.splitlines()[0] == "error: override 'dim': '${9**9**9}' makes an integer beyond 64 bits"
    code, out = _cli(["validate", "vit", "-r", "attn={global-attn: {haeds: 3}}"], capsys)
    assert out.splitlines()[0] == ("error: replacement 'attn': blocks.0.attn: unknown field 'haeds' for block "
                                   "'global-attn'")
    code, out = _cli(["validate", "vit", "-v", "base", "--set", "dim=$nope"], capsys)
    assert out.splitlines()[0] == "error: override 'dim': unknown parameter '$nope'"


def test_a_variant_value_is_located_at_the_variant(tmp_path):
    path = tmp_path / "v.yaml"
    path.write_text(TINY + "variants:\n  big: {mult: '${1 // 0}'}\n")
    with pytest.raises(VitdslError) as e:
        vitdsl.validate(path, variant="big")
    assert str(e.value.location) == f"{path}:8:15"  # the variant's value, not the params line


def test_escape_and_bidi_characters_are_shown_escaped(tmp_path, capsys):
    path = tmp_path / "t.yaml"
    path.write_text("name: t\ninput: {tokens: [4, 8]}\nlayers:\n  - mlp: {\"mu\\b\\alt\": 2}\n")
    code, out = _cli(["validate", str(path)], capsys)
    assert "unknown field 'mu\\x08\\x07lt' for block 'mlp'" in out
    path.write_text("name: t\ninput: {tokens: [4, 8]}\nlayers:\n  - \"\\e]0;pwned\\a\\u202e\": {}\n")
    code, out = _cli(["validate", str(path)], capsys)
    assert "unknown block '\\x1b]0;pwned\\x07\\u202e'" in out
    assert not any(c in out for c in "\x1b\x07\x08\u202e")
    path.write_text("name: \"[red]n\\e[2J\"\ninput: {tokens: [4, 8]}\nlayers:\n  - mlp: {}\n")
    code, out = _cli(["summary", str(path)], capsys)
    assert code == 0 and "[red]n\\x1b[2J" in out and "\x1b" not in out


def test_messages_of_several_lines_are_escaped_line_by_line():
    from vitdsl.errors import safe_text

    assert safe_text("a\nb — ×") == "a\nb — ×"
    assert safe_text("a\nb\x1bc\u2028d\re") == "a\nb\\x1bc\\u2028d\\x0de"
    assert safe_text("a\nb", keep_newlines=False) == "a\\x0ab"


def test_errors_quote_only_lines_read_as_blueprints(tmp_path, capsys):
    """A location can name any file (a checkpoint, a file changed since): the line is never re-read."""
    from vitdsl.cli import render_error
    from vitdsl.errors import Location

    secret = tmp_path / "s.txt"
    secret.write_text(SECRET)
    assert render_error(VitdslError("bad", location=Location(str(secret), 1, 1))) == f"error: {secret}:1:1: bad"


def test_blueprints_built_in_python_or_carried_by_checkpoints_meet_the_same_limits():
    from vitdsl.blueprint.load import from_data

    data = {"name": "t", "input": {"tokens": [4, 8]}, "layers": [{"mlp": {"hidden": 2 ** 70}}]}
    with pytest.raises(VitdslError, match=r"field 'hidden' of 'mlp': is too large: numbers must stay below 2\*\*63"):
        vitdsl.validate(from_data(data))
    deep = inner = {}
    for _ in range(100):
        inner["a"] = {}
        inner = inner["a"]
    with pytest.raises(VitdslError, match="nests deeper than 64 levels"):
        from_data({"name": "t", "input": {"tokens": [4, 8]}, "layers": [{"mlp": {}}], "params": deep})
    with pytest.raises(VitdslError, match="makes an integer beyond 64 bits"):
        vitdsl.validate(from_data({"name": "t", "input": {"tokens": [4, 8]}, "params": {"x": "${10**10**10}"},
                                   "layers": [{"mlp": {}}]}))


def test_weights_that_cannot_fit_are_refused_before_allocation(monkeypatch, capsys):
    from vitdsl.graph import budget

    monkeypatch.setattr(budget, "available_bytes", lambda device: 10 ** 9 if str(device) != "meta" else None)
    with pytest.raises(VitdslError) as e:
        vitdsl.build("vit", overrides={"dim": 100_000, "heads": 1, "dim_head": 8})
    assert e.value.message == ("the weights need 11.6 GB (2,894,719,432 parameters), more than the 1.0 GB of "
                               "memory available; largest blocks: blocks.5.ff (409,902,048), blocks.4.ff "
                               "(409,902,048), blocks.3.ff (409,902,048)")
    assert "--skip-memory-check" in e.value.hint
    code, out = _cli(["build", "vit", "--set", "dim=100000"], capsys)
    assert code == 2 and "more than the 1.0 GB of memory available" in out
    vitdsl.build("vit", overrides={"dim": 100_000, "heads": 1, "dim_head": 8}, device="meta")  # nothing allocated


def test_expressions_follow_python(tmp_path):
    from vitdsl.blueprint.expr import resolve_params

    got = resolve_params({"k": 0, "a": "${0 or 16}", "b": "${k == 0 or 64 // k}", "c": "${k and 64 // k}",
                          "d": "${[] or [1, 2]}", "e": "${3 and 4}", "f": "${not k}"})
    assert (got["a"], got["b"], got["c"], got["d"], got["e"], got["f"]) == (16, True, 0, [1, 2], 4, True)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes are POSIX")
def test_a_named_pipe_is_not_read(tree, capsys):
    os.mkfifo(tree / "proj" / "pipe.yaml")
    (tree / "proj" / "child.yaml").write_text("extends: pipe.yaml\nname: c\n")
    code, out = _cli(["validate", str(tree / "proj" / "child.yaml")], capsys)
    assert code == 2 and "not a file and not in the zoo" in out


def test_memory_is_asked_of_the_device_the_weights_go_to():
    import torch

    from vitdsl.graph.budget import available_bytes

    assert isinstance(available_bytes("cpu"), int) and available_bytes("cpu") > 0
    assert available_bytes("meta") is None and available_bytes("mps") is None
    if not torch.cuda.is_available():
        assert available_bytes("cuda") is None
