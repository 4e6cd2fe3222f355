"""Blocks of one's own, from outside the library: a plugin (a Python file or module, named on the command
line with ``--plugin``) or an installed package's entry point in the group ``vitdsl.blocks``. Importing
either registers its blocks (``vitdsl.register_block``); an entry point may also name a ``BlockSpec``
subclass, registered here.

A blueprint never names a plugin: it is untrusted input and never makes vitdsl run code. Whoever runs
vitdsl chooses the code, on the command line or by installing a package.
"""
from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import traceback
from pathlib import Path
from types import ModuleType

from ..errors import VitdslError, clip
from .base import REGISTRY, BlockClash, BlockSpec, register

GROUP = "vitdsl.blocks"
_FILES: dict[Path, ModuleType] = {}  # plugin files already run, by resolved path: a second --plugin is a no-op
_installed = False  # the entry points were loaded


def installed() -> dict[str, type[BlockSpec]]:
    """The block registry, with the blocks of installed packages' entry points (loaded on the first call)."""
    global _installed
    if not _installed:
        import importlib.metadata  # not at import: a `vitdsl list` answered from its cache never needs it

        for ep in importlib.metadata.entry_points(group=GROUP):
            _load_entry_point(ep)
        _installed = True
    return REGISTRY


def _load_entry_point(ep) -> None:
    dist = getattr(getattr(ep, "dist", None), "name", None)
    what = f"entry point '{ep.name} = {ep.value}' ({GROUP}) of the distribution '{dist or 'unknown'}'"
    module = ep.value.partition(":")[0].strip()
    try:
        obj = ep.load()
        if isinstance(obj, type) and issubclass(obj, BlockSpec):
            register(obj)
    except Exception as e:
        raise _failure(what, e, _module_files(module), f"reinstall or uninstall '{dist}'" if dist else None
                       ) from None


def load_plugin(target: str) -> ModuleType:
    """Import a plugin: a ``.py`` file (or any path with a folder in it) or a dotted module name, importable
    from the working directory or installed. Its blocks register as it is imported."""
    path = Path(target)
    if target.endswith(".py") or os.sep in target or "/" in target:
        return _load_file(target, path)
    what = f"plugin '{target}'"
    if os.getcwd() not in sys.path and "" not in sys.path:  # as `python -m` does: modules of the working dir
        sys.path.insert(0, os.getcwd())
    try:
        found = importlib.util.find_spec(target)
    except Exception as e:  # a package on the way failed to import
        raise _failure(what, e, _module_files(target.partition(".")[0]), None) from None
    if found is None:
        raise VitdslError(f"{what} not found: no such file or module",
                          hint="name a Python file (my_blocks.py) or a module importable from the working "
                               "directory or installed (my_package.blocks)")
    try:
        return importlib.import_module(target)
    except Exception as e:
        raise _failure(what, e, _module_files(target), None) from None


def _load_file(target: str, path: Path) -> ModuleType:
    what = f"plugin '{target}'"
    if not path.is_file():
        raise VitdslError(f"{what} not found: no such file", hint="give the path of a Python file that "
                          "registers blocks with vitdsl.register_block, relative to the working directory")
    key = path.resolve()
    if key in _FILES:
        return _FILES[key]
    loaded = next((m for m in list(sys.modules.values()) if _origin(m) == key), None)
    if loaded is not None:  # imported already as a module (--plugin my_blocks): running it again would clash
        return loaded
    name = path.stem if path.stem.isidentifier() and path.stem not in sys.modules else f"vitdsl_plugin_{len(_FILES)}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None:
        raise VitdslError(f"{what} is not a Python file", hint="a plugin file's name ends in .py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # pydantic resolves the spec's annotations in its module
    try:
        spec.loader.exec_module(module)
    except Exception as e:
        del sys.modules[name]
        raise _failure(what, e, (key,), None) from None
    _FILES[key] = module
    return module


def _origin(module: ModuleType) -> Path | None:
    spec = getattr(module, "__spec__", None)
    origin = getattr(spec, "origin", None)
    return Path(origin).resolve() if isinstance(origin, str) and origin.endswith(".py") else None


def _module_files(module: str) -> tuple[Path, ...]:
    """Where a module's code lies (its package's folder, or its file), found without running it."""
    try:
        found = importlib.util.find_spec(module.partition(".")[0])
    except Exception:
        return ()
    if found is None:
        return ()
    places = [Path(p).resolve() for p in found.submodule_search_locations or ()]
    return tuple(places or ([Path(found.origin).resolve()] if found.origin else []))


def _failure(what: str, e: Exception, own: tuple[Path, ...], hint: str | None) -> VitdslError:
    """The error of a plugin that failed as it was imported: its exception and the deepest line of the
    plugin's own code in the traceback (vitdsl's and importlib's frames say nothing to its author)."""
    if isinstance(e, BlockClash):
        hint = hint or "rename the plugin's block (its class attribute block)"
        return VitdslError(f"{what} failed: {e}{_line(e, own)}", hint=hint)
    if isinstance(e, SyntaxError):
        return VitdslError(f"{what} failed: SyntaxError: {e.msg}\n  at {_shown(e.filename)}:{e.lineno}: "
                           f"{clip((e.text or '').strip())}", hint=hint)
    return VitdslError(f"{what} failed: {type(e).__name__}: {clip(str(e), 300)}{_line(e, own)}", hint=hint)


def _line(e: Exception, own: tuple[Path, ...]) -> str:
    frames = traceback.extract_tb(e.__traceback__)
    theirs = [f for f in frames if _within(f.filename, own)]
    outside = [f for f in frames if not f.filename.startswith("<") and not _within(f.filename, (_PACKAGE,))]
    frame = (theirs or outside or [None])[-1]
    if frame is None:
        return ""
    return f"\n  at {_shown(frame.filename)}:{frame.lineno}: {clip((frame.line or '').strip())}"


_PACKAGE = Path(__file__).resolve().parents[1]


def _within(filename: str, places: tuple[Path, ...]) -> bool:
    if filename.startswith("<"):
        return False
    path = Path(filename).resolve()
    return any(path == p or path.is_relative_to(p) for p in places)


def _shown(filename: str | None) -> str:
    if not filename:
        return "?"
    try:
        return str(Path(filename).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return filename
