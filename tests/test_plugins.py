"""Blocks of one's own from outside: ``vitdsl --plugin FILE_OR_MODULE`` and installed packages' entry points
(group ``vitdsl.blocks``). A blueprint never names code: an unknown block's hint says where blocks come from."""
from __future__ import annotations

import sys
import textwrap
from types import SimpleNamespace

import pytest

import vitdsl
from vitdsl.blocks import REGISTRY, plugins
from vitdsl.blocks.base import PLUGIN_HINT
from vitdsl.cli import main
from vitdsl.graph.build import info

PLUGIN = '''\
"""A learned per-channel scale on every token."""
import torch
from torch import nn

import vitdsl
from vitdsl.blocks import BlockSpec


class Scale(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.gain = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        return x * self.gain


@vitdsl.register_block
class ScaleSpec(BlockSpec):
    """Scales every channel by a learned gain."""

    block = "test-plugin-scale"

    def count_params(self, x):
        return x.features

    def build(self, x):
        return Scale(x.features)
'''

BLUEPRINT = """\
name: scaled
input: {image: [3, 16, 16]}
layers:
  - patchify: {patch: 8, dim: 8}
  - test-plugin-scale: {}
  - pool: mean
  - head: 2
"""


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A working directory with the plugin and a blueprint that uses it; whatever the test registers or imports
    is forgotten afterwards."""
    (tmp_path / "scale_blocks.py").write_text(PLUGIN)
    (tmp_path / "bp.yaml").write_text(BLUEPRINT)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.setattr(plugins, "_FILES", {})
    monkeypatch.setattr(plugins, "_installed", False)
    registry = dict(REGISTRY)
    yield tmp_path
    REGISTRY.clear()
    REGISTRY.update(registry)
    for name, module in list(sys.modules.items()):  # the plugins only: torch, imported meanwhile, stays
        if str(getattr(module, "__file__", None) or "").startswith(str(tmp_path)):
            del sys.modules[name]


def run(argv, capsys) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_a_plugin_file_builds_a_blueprint_with_its_block(home, capsys):
    code, out, err = run(["--plugin", "scale_blocks.py", "build", "bp.yaml"], capsys)
    assert (code, err) == (0, "")
    row = next(line for line in out.splitlines() if "test-plugin-scale" in line)
    assert [cell.strip() for cell in row.split("│")[1:7]] == ["test_plugin_scale", "test-plugin-scale", "",
                                                               "4×8", "4×8", "8"]
    assert "Total params: 1,570" in out  # patchify 192·8 + 8, the scale 8, the head 8·2 + 2
    model = vitdsl.build("bp.yaml")  # registered for this process: Python sees the block too
    assert sum(p.numel() for p in model.parameters()) == 1570


def test_a_plugin_module_after_the_command_and_given_twice(home, capsys):
    code, out, _ = run(["validate", "bp.yaml", "--plugin", "scale_blocks", "--plugin", "./scale_blocks.py"],
                       capsys)
    assert code == 0 and out.startswith("ok: scaled — 4 blocks, image 3×16×16 → vector 2\n  params: 1,570")


def test_the_schema_has_the_plugin_blocks(home, capsys):
    assert run(["--plugin", "scale_blocks.py", "schema", "-o", "schema.json"], capsys) == (0, "", "")
    assert '"block:test-plugin-scale"' in (home / "schema.json").read_text()


def test_without_the_plugin_the_hint_names_plugins_and_entry_points(home, capsys):
    code, _, err = run(["validate", "bp.yaml"], capsys)
    head, hint = err.split("\n  hint: ")
    assert code == 2 and head.startswith("error: bp.yaml:5:5: unknown block 'test-plugin-scale'")
    assert hint.startswith("blocks: attn-pool, ") and hint.endswith(f"; {PLUGIN_HINT}\n")
    assert PLUGIN_HINT == ("a block of your own loads with 'vitdsl --plugin FILE.py' or an installed package's "
                           "'vitdsl.blocks' entry point")


CLASH = '''\
import vitdsl
from vitdsl.blocks import BlockSpec


@vitdsl.register_block
class MyMlp(BlockSpec):
    """Not the built-in mlp."""
    block = "mlp"
'''


@pytest.mark.parametrize("files,plugin,message", [
    ({}, "missing.py", "error: plugin 'missing.py' not found: no such file\n"
                       "  hint: give the path of a Python file that registers blocks with vitdsl.register_block, "
                       "relative to the working directory"),
    ({}, "missing_module", "error: plugin 'missing_module' not found: no such file or module\n"
                           "  hint: name a Python file (my_blocks.py) or a module importable from the working "
                           "directory or installed (my_package.blocks)"),
    ({"broken.py": "import vitdsl\n\nwidth = 1 / 0\n"}, "broken.py",
     "error: plugin 'broken.py' failed: ZeroDivisionError: division by zero\n  at broken.py:3: width = 1 / 0"),
    ({"pkg/__init__.py": "", "pkg/blocks.py": "from .missing import Block\n"}, "pkg.blocks",
     "error: plugin 'pkg.blocks' failed: ModuleNotFoundError: No module named 'pkg.missing'\n"
     "  at pkg/blocks.py:1: from .missing import Block"),
    ({"typo.py": "def f(:\n    pass\n"}, "typo.py", "error: plugin 'typo.py' failed: SyntaxError: invalid syntax\n"
                                                      "  at typo.py:1: def f(:"),
    ({"clash.py": CLASH}, "clash.py",
     "error: plugin 'clash.py' failed: block 'mlp' of clash.MyMlp clashes with the built-in block 'mlp' "
     "(vitdsl.blocks.mlp.MLP)\n  at clash.py:5: @vitdsl.register_block\n"
     "  hint: rename the plugin's block (its class attribute block)"),
])
def test_plugin_errors(home, capsys, files, plugin, message):
    for name, text in files.items():
        (home / name).parent.mkdir(exist_ok=True)
        (home / name).write_text(text)
    code, out, err = run(["--plugin", plugin, "validate", "bp.yaml"], capsys)
    assert (code, out, err) == (2, "", message + "\n")
    assert "mlp" in REGISTRY and REGISTRY["mlp"].__module__ == "vitdsl.blocks.mlp"


def params(graph) -> int:
    return info(graph)["params"]


class FakeEntryPoint:
    """What importlib.metadata gives for an installed package's ``[project.entry-points."vitdsl.blocks"]``."""

    group = "vitdsl.blocks"

    def __init__(self, name: str, value: str, dist: str):
        self.name, self.value, self.dist = name, value, SimpleNamespace(name=dist)

    def load(self):
        module, _, attr = self.value.partition(":")
        __import__(module)
        obj = sys.modules[module]
        return getattr(obj, attr) if attr else obj


@pytest.fixture
def installed(home, monkeypatch):
    """Entry points as an installed distribution 'scale-blocks' would declare them."""
    sys.path.insert(0, str(home))
    found: list[FakeEntryPoint] = []
    asked = []

    def entry_points(group):
        asked.append(group)
        return [ep for ep in found if ep.group == group]

    monkeypatch.setattr(plugins.importlib.metadata, "entry_points", entry_points)
    return found, asked


def test_entry_points_load_once_when_the_registry_is_needed(installed):
    found, asked = installed
    found.append(FakeEntryPoint("scale", "scale_blocks", "scale-blocks"))
    assert "test-plugin-scale" not in REGISTRY and asked == []  # nothing loaded before a blueprint needs blocks
    assert params(vitdsl.validate("bp.yaml")) == 1570
    vitdsl.validate("bp.yaml")
    assert asked == ["vitdsl.blocks"] and "test-plugin-scale" in REGISTRY


def test_an_entry_point_may_name_the_spec_class(installed, home):
    found, _ = installed
    (home / "scale_class.py").write_text(PLUGIN.replace("@vitdsl.register_block\n", ""))
    found.append(FakeEntryPoint("scale", "scale_class:ScaleSpec", "scale-blocks"))
    assert params(vitdsl.validate("bp.yaml")) == 1570


def test_a_failing_entry_point_names_its_distribution(installed, home, capsys):
    found, _ = installed
    (home / "scale_broken.py").write_text(PLUGIN + "\nraise RuntimeError('no GPU here')\n")
    found.append(FakeEntryPoint("scale", "scale_broken", "scale-blocks"))
    code, out, err = run(["validate", "bp.yaml"], capsys)
    assert (code, out) == (2, "")
    assert err == textwrap.dedent("""\
        error: entry point 'scale = scale_broken' (vitdsl.blocks) of the distribution 'scale-blocks' failed: \
RuntimeError: no GPU here
          at scale_broken.py:30: raise RuntimeError('no GPU here')
          hint: reinstall or uninstall 'scale-blocks'
        """)
