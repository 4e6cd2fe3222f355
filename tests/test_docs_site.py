"""The docs site: `mkdocs build --strict` over docs/ (mkdocs.yml, hooks in tools/mkdocs_hooks.py).

Strict mode fails on a broken link or anchor between pages, on a page left out of the nav, and (through the
hook) on a link out of docs/ to a file the repository does not have.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("mkdocs", reason="mkdocs is not installed: install the test extra (pip install -e '.[test]')")
pytest.importorskip("material", reason="mkdocs-material is not installed: install the test extra")

from mkdocs.config import load_config  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
HOOKS = ROOT / "tools" / "mkdocs_hooks.py"


def mkdocs_build(config: Path, site: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(config), "-d", str(site)],
        capture_output=True, text=True, env=env, cwd=config.parent, timeout=120,
    )


def nav_pages(items) -> list[str]:
    pages = []
    for item in items:
        value = next(iter(item.values())) if isinstance(item, dict) else item
        pages += nav_pages(value) if isinstance(value, list) else [value]
    return pages


def test_site_builds_strict(tmp_path):
    done = mkdocs_build(ROOT / "mkdocs.yml", tmp_path / "site")
    assert done.returncode == 0, done.stdout + done.stderr
    assert (tmp_path / "site" / "index.html").exists()
    assert (tmp_path / "site" / "blocks" / "patchify" / "index.html").exists()


def test_every_page_is_in_the_nav():
    config = load_config(str(ROOT / "mkdocs.yml"))
    config = config.plugins.on_config(config)  # the hook expands the Blocks section
    pages = nav_pages(config.nav)
    assert len(pages) == len(set(pages)), "a page is in the nav twice"
    on_disk = sorted(p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md"))
    assert sorted(pages) == on_disk


def test_links_out_of_docs_are_checked_against_the_repository(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "there.yaml").write_text("a: 1\n")
    (tmp_path / "docs" / "index.md").write_text("# Page\n\n[kept](../there.yaml) [gone](../gone.yaml)\n")
    (tmp_path / "mkdocs.yml").write_text(f"site_name: t\nhooks: ['{HOOKS.as_posix()}']\nnav: [index.md]\n")
    done = mkdocs_build(tmp_path / "mkdocs.yml", tmp_path / "site")
    assert done.returncode == 1
    warnings = [line for line in done.stderr.splitlines() if line.startswith("WARNING")]
    assert warnings == [
        "WARNING -  Doc file 'index.md' links to '../gone.yaml', which is not a file of the repository",
        "WARNING -  Doc file 'index.md' contains a link '../gone.yaml', but the target is not found among "
        "documentation files.",
    ]
