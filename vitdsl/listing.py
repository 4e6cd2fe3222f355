"""What ``vitdsl list`` shows of each zoo blueprint (parameters, description), remembered between runs.

Finding a blueprint's parameter count means validating it completely, which for the whole zoo takes
seconds; the answer only changes when a file it read changes, or vitdsl does. So each answer is kept in
a cache file under the user's cache folder (``$VITDSL_CACHE_DIR``, else ``$XDG_CACHE_HOME/vitdsl``, else
``~/.cache/vitdsl``) with the SHA-256 of the text of every file read to reach it (the blueprint, its
``extends`` parents, an objective's encoder, …) and every file looked for while resolving names (found
or not: a new file could change where a name resolves), and served only while every one of those files
still has that text and each looked-for file is still there, or still absent. The cache file itself is
specific to the vitdsl version and its source files (their sizes and modification times, what Python
trusts for its own bytecode cache) and the working directory. Only successes are kept: a broken
blueprint is validated, and refused, every time.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

from .blueprint.confine import is_file, recording
from .blueprint.load import find, load, objective_names, zoo_names
from .blueprint.source import text_digest

FORMAT = 1  # bump when what an entry holds changes


def cache_dir() -> Path:
    if os.environ.get("VITDSL_CACHE_DIR"):
        return Path(os.environ["VITDSL_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "vitdsl"


def _signature() -> str:
    """What every entry of one cache file depends on besides the files it names."""
    from . import __version__

    h = hashlib.sha256(f"{FORMAT} {__version__}\n".encode())
    package = Path(__file__).resolve().parent
    for p in sorted(package.rglob("*")):
        if p.suffix in (".py", ".json", ".yaml") and "__pycache__" not in p.parts:
            st = p.stat()
            h.update(f"{p.relative_to(package)} {st.st_size} {st.st_mtime_ns}\n".encode())
    h.update(f"cwd {Path.cwd().resolve()}\n".encode())  # where relative names resolve
    return h.hexdigest()


def _unchanged(entry: dict) -> bool:
    """Every file the entry read has the same text, and every file looked for is still there or still not."""
    for path, digest in entry["files"]:
        try:
            text = Path(path).read_bytes().decode("utf-8-sig")
        except (OSError, UnicodeDecodeError):
            return False
        if text_digest(text) != digest:
            return False
    return all(is_file(Path(path)) == found for path, found in entry["lookups"])


class Cache:
    """The remembered rows of one signature; ``save`` writes them back if anything was learnt."""

    def __init__(self, enabled: bool = True):
        self.enabled, self.entries, self.dirty = enabled, {}, False
        if not enabled:
            return
        self.file = cache_dir() / f"list-{_signature()[:32]}.json"
        try:
            data = json.loads(self.file.read_text())
            if isinstance(data, dict) and isinstance(data.get("entries"), dict):
                self.entries = data["entries"]
        except (OSError, ValueError):
            pass  # none yet, or unreadable: start afresh

    def row(self, name: str, compute: Callable[[Any], int]) -> tuple[int, str]:
        """(parameters, description) of zoo blueprint ``name``; ``compute`` gives the parameters of the
        loaded blueprint (and raises for a broken one)."""
        entry = self.entries.get(name) if self.enabled else None
        if isinstance(entry, dict) and entry.get("files") and _unchanged(entry):
            return entry["params"], entry["description"]
        with recording() as seen:
            bp = load(find(name))
            params = compute(bp)
        self.entries[name] = {"params": params, "description": bp.description, **seen}
        self.dirty = True
        return params, bp.description

    def save(self) -> None:
        if not (self.enabled and self.dirty):
            return
        try:  # written whole, then renamed: a reader never sees half a file
            self.file.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.file.parent, prefix=".list-", suffix=".tmp")
            with os.fdopen(fd, "w") as f:
                json.dump({"entries": self.entries}, f)
            os.replace(tmp, self.file)
        except OSError:
            pass  # a read-only home: list still works, only slower next time


def _architecture_params(bp) -> int:
    from .graph.build import build_graph, info

    return info(build_graph(bp.resolve()))["params"]


def _objective_params(bp) -> int:
    return bp.resolve().trained_params


def zoo_rows(cached: bool = True) -> tuple[list[tuple[str, int, str]], list[tuple[str, int, str]]]:
    """The rows of ``vitdsl list``: (name, parameters, description) of the architectures (zoo and examples),
    then of the objectives (parameters trained)."""
    cache = Cache(cached)
    try:
        plain = [(n, *cache.row(n, _architecture_params)) for n in zoo_names(examples=True)]
        objectives = [(n, *cache.row(n, _objective_params)) for n in objective_names()]
    finally:
        cache.save()  # what was learnt before a broken blueprint still counts
    return plain, objectives
