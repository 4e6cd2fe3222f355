"""mkdocs hooks for the docs site (mkdocs.yml names this file under ``hooks:``).

* The Blocks section of the nav is built from the generated ``docs/blocks/index.md``: one sub-section per
  family, in the index's order, so a block added by ``tools/docgen.py`` appears on the site without an edit
  to mkdocs.yml.
* Pages link to files outside ``docs/`` (``../blueprints/vit.yaml``, ``../README.md``), which mkdocs cannot
  resolve and reports as missing pages. Here each such link is checked against the repository instead: a
  target that does not exist stays a warning (so ``--strict`` fails, naming the page and the link); one that
  exists is rewritten to ``repo_url`` when mkdocs.yml sets it, and mkdocs' own "not found" warning for it is
  lowered to info. Links between docs pages keep mkdocs' full checks.
"""

from __future__ import annotations

import logging
import posixpath
import re
from pathlib import Path

log = logging.getLogger("mkdocs.hooks.vitdsl")

FAMILY = re.compile(r"^## (.+)$")
ROW = re.compile(r"^\| \[`([^`]+)`\]\(([^)]+\.md)\)")
LINK = re.compile(r"\]\(([^)\s]+)\)")
NOT_FOUND = re.compile(r"Doc file '([^']+)' contains a link '([^']+)', but the target")

# (page src_uri, link) pairs whose target exists in the repository outside docs/
OUTSIDE: set[tuple[str, str]] = set()


def block_nav(docs_dir: Path) -> list:
    """The Blocks nav section from docs/blocks/index.md: its families with their pages in index order."""
    nav: list = [{"Overview": "blocks/index.md"}]
    for line in (docs_dir / "blocks" / "index.md").read_text().splitlines():
        if match := FAMILY.match(line):
            nav.append({match.group(1): []})
        elif (match := ROW.match(line)) and len(nav) > 1:
            next(iter(nav[-1].values())).append({match.group(1): f"blocks/{match.group(2)}"})
    return nav


class _OutsideLinks(logging.Filter):
    """Lowers mkdocs' "not found" warning to info for links already checked against the repository."""

    def filter(self, record: logging.LogRecord) -> bool:
        match = NOT_FOUND.match(record.getMessage())
        if record.levelno == logging.WARNING and match and (match.group(1), match.group(2)) in OUTSIDE:
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True


def on_startup(command, dirty) -> None:
    pages = logging.getLogger("mkdocs.structure.pages")
    if not any(isinstance(f, _OutsideLinks) for f in pages.filters):
        pages.addFilter(_OutsideLinks())


def on_config(config):
    docs_dir = Path(config.docs_dir)
    config.nav = [
        {"Blocks": block_nav(docs_dir)} if item == {"Blocks": "blocks/index.md"} else item for item in config.nav
    ]
    return config


def on_page_markdown(markdown, page, config, files):
    docs_dir = Path(config.docs_dir).resolve()
    root = Path(config.config_file_path).resolve().parent
    repo_url = (config.repo_url or "").rstrip("/")

    def check(match: re.Match) -> str:
        url = match.group(1)
        path, _, anchor = url.partition("#")
        if re.match(r"^[a-z][a-z0-9+.-]*:", path) or not path or path.startswith("/"):
            return match.group(0)
        target = (docs_dir / posixpath.dirname(page.file.src_uri) / path).resolve()
        if target == docs_dir or docs_dir in target.parents:
            return match.group(0)  # a docs page: mkdocs checks it
        rel = target.relative_to(root).as_posix() if root in target.parents else None
        if rel is None or not target.exists():
            log.warning(f"Doc file '{page.file.src_uri}' links to '{url}', which is not a file of the repository")
            return match.group(0)
        if repo_url:
            kind = "tree" if target.is_dir() else "blob"
            return f"]({repo_url}/{kind}/main/{rel}{'#' + anchor if anchor else ''})"
        OUTSIDE.add((page.file.src_uri, url))
        return match.group(0)

    return LINK.sub(check, markdown)
