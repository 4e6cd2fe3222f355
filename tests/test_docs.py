"""The docs stay true: block pages match the specs, every field is described, every example builds."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

import vitdsl
from vitdsl.blocks import REGISTRY

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "docs" / "examples").glob("*.yaml"))


def test_block_pages_are_up_to_date():
    run = subprocess.run([sys.executable, "tools/docgen.py", "--check"], cwd=ROOT,
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr


def test_the_index_knows_what_every_block_gives_and_says_whole_sentences():
    rows = [line for line in (ROOT / "docs" / "blocks" / "index.md").read_text().splitlines() if line.startswith("| [")]
    assert len(rows) == len(REGISTRY)
    assert not [r for r in rows if "→ ?" in r]
    summaries = [r.split(" | ")[1] for r in rows]
    assert not [s for s in summaries if not s.endswith((".", ")"))]
    assert "(`position: last`, e.g. DeiT's distillation token, appended after the positions" in "".join(summaries)


def test_every_block_has_a_page():
    missing = [name for name in REGISTRY if not (ROOT / "docs" / "blocks" / f"{name}.md").is_file()]
    assert not missing, f"blocks without a page: {missing}"


def test_every_block_and_field_is_described():
    offenders = [f"{name} (docstring)" for name, cls in sorted(REGISTRY.items()) if not (cls.__doc__ or "").strip()]
    offenders += [f"{name}.{field}" for name, cls in sorted(REGISTRY.items())
                  for field, info in cls.model_fields.items() if not (info.description or "").strip()]
    assert not offenders, "missing descriptions: " + ", ".join(offenders)


def test_there_are_examples():
    assert EXAMPLES, "docs/examples/*.yaml is empty"


def test_tutorial_yaml_is_the_example_files():
    """The tutorial quotes its blueprints whole, so the tests of the files cover the text too."""
    blocks = re.findall(r"```yaml\n(.*?)```", (ROOT / "docs" / "tutorial.md").read_text(), re.S)
    files = {p.read_text() for p in EXAMPLES}
    assert blocks and all(b in files for b in blocks), "a YAML block of docs/tutorial.md is no docs/examples file"


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_validates_builds_and_runs(path):
    torch = pytest.importorskip("torch")
    bp = vitdsl.load(path)
    for variant in [None, *bp.variants]:
        vitdsl.validate(path, variant=variant)
    torch.manual_seed(0)
    model = vitdsl.build(path).eval()
    x = torch.randn(2, *model.input_shape)
    with torch.no_grad():
        y = model(x)
    assert tuple(y.shape) == (2, *model.output_shape)
    assert torch.isfinite(y).all()
