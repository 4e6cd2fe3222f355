"""Reading blueprints: files, zoo names, ``extends``, variants and ``--set`` overrides.

Merge rules for ``extends: base.yaml`` (a path relative to the extending file, or a zoo name):
mappings merge key by key, recursively (so ``params``, ``variants`` and ``input`` can be changed one
entry at a time); every other value — lists included, so ``layers`` — is replaced whole.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Mapping

from ..errors import Location, VitdslError, suggest
from . import confine, limits
from .confine import zoo_dir
from .items import item_names
from .kinds import BlueprintBase, check_data, kind_of
from .model import Blueprint
from .replace import parse_replace, replaced
from .source import SourceMap, parse_yaml, read_yaml

__all__ = ["Blueprint", "check_data", "deep_merge", "find", "from_data", "item_names", "load", "loads",
           "objective_names", "parse_override", "parse_replace", "replace", "zoo_dir", "zoo_names"]
replace = replaced  # the name it has always had here


def zoo_names(examples: bool = False) -> list[str]:
    """The zoo's blueprint names; with ``examples``, also the hybrids as ``examples/NAME``."""
    names = sorted(p.stem for p in zoo_dir().glob("*.yaml"))
    if examples:
        names += sorted(f"examples/{p.stem}" for p in (zoo_dir() / "examples").glob("*.yaml"))
    return names


def objective_names() -> list[str]:
    """The zoo's objective blueprints, as ``objectives/NAME``."""
    return sorted(f"objectives/{p.stem}" for p in (zoo_dir() / "objectives").glob("*.yaml"))


def find(path_or_name: str | Path, relative_to: Path | None = None, trusted: bool = False) -> Path:
    """A blueprint file from a path or a zoo name (``maxvit``). Unless ``trusted`` (the file the user named),
    it must lie inside the roots of the load in progress (see :mod:`.confine`)."""
    confine.check_name(str(path_or_name))
    p = Path(path_or_name)
    candidates = [p] if p.is_absolute() else ([relative_to / p] if relative_to else []) + [p]
    refused = False
    for c in candidates:
        if not trusted and not confine.allowed(c):
            refused = True
        elif confine.is_file(c):
            return c
    name = p.name[:-5] if p.name.endswith(".yaml") else p.name
    zoo = zoo_dir() / p.parent / f"{name}.yaml"  # maxvit, examples/maxvit_cait
    if not p.is_absolute() and confine.is_file(zoo):
        if confine.allowed(zoo, (zoo_dir().resolve(),)):
            return zoo
        refused = True
    if refused:
        raise confine.refusal(str(path_or_name))
    raise VitdslError(f"no blueprint '{path_or_name}': not a file and not in the zoo",
                      hint=suggest(str(p.with_name(name)), zoo_names(examples=True) + objective_names(),
                                   "zoo blueprints"))


def deep_merge(base: Any, over: Any) -> Any:
    if isinstance(base, dict) and isinstance(over, dict):
        out = dict(base)
        for k, v in over.items():
            out[k] = deep_merge(base[k], v) if k in base else v
        return out
    return over


def _read_with_extends(path: Path, seen: tuple[Path, ...] = (), at: Location | None = None) -> tuple[dict, SourceMap]:
    path = path.resolve() if path.is_absolute() else path
    if path.resolve() in seen:
        chain = " -> ".join(str(p) for p in seen + (path.resolve(),))
        raise VitdslError(f"'extends' forms a cycle: {chain}", location=at,
                          hint="a blueprint cannot extend itself, directly or through others")
    if len(seen) >= limits.EXTENDS:
        raise VitdslError(f"'extends' chains more than {limits.EXTENDS} blueprints", location=at)
    if not confine.is_regular(path):
        raise VitdslError(f"'{path}' is not a regular file", location=at,
                          hint="a blueprint is a YAML text file")
    data, source = read_yaml(path)
    if not isinstance(data, dict):
        raise VitdslError("a blueprint must be a mapping with name, input and layers",
                          location=source.find(()))
    base_ref = data.pop("extends", None)
    if base_ref is None:
        return data, source
    if not isinstance(base_ref, str):
        raise VitdslError("'extends' takes one blueprint path or zoo name", location=source.find(("extends",)))
    try:
        base_path = find(base_ref, relative_to=path.parent)
    except VitdslError as e:
        raise e.at(source.find(("extends",))) from None
    base, base_source = _read_with_extends(base_path, seen + (path.resolve(),), source.find(("extends",)))
    return deep_merge(base, data), base_source.merged(source)


def from_data(data: Any, source: SourceMap | None = None, file: str | None = None) -> BlueprintBase:
    source = source or SourceMap()
    if not isinstance(data, dict):
        raise VitdslError("a blueprint must be a mapping with name, input and layers", location=source.find(()))
    if "extends" in data:
        raise VitdslError("'extends' needs a file: use vitdsl.load on a path", location=source.find(("extends",)))
    return kind_of(data).from_document(data, source, file)


def loads(text: str, name: str = "<string>") -> Blueprint:
    data, source = parse_yaml(text, name)
    return from_data(data, source, name)


def parse_override(text: str) -> tuple[str, Any]:
    """``key=value`` from the command line; the value is read as YAML (``10``, ``[1, 2]``, ``true``)."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise VitdslError(f"override '{text}' is not of the form key=value", hint="for example --set classes=10")
    key = key.strip()
    # the reader of blueprint files, with its limits and located errors (a value is untrusted input too)
    return key, parse_yaml(value, f"override '{key}'")[0] if value.strip() else None


def load(path_or_name: str | Path | BlueprintBase, variant: str | None = None,
         overrides: Mapping[str, Any] | None = None, replace: Mapping[str, Any] | None = None,
         allow_paths: Iterable[str | Path] = (), compat: str | None = None) -> BlueprintBase:
    """A Blueprint from a file path, a zoo name or a Blueprint, with a variant and overrides applied, and
    named layer items replaced (``replace={name: item}``, see :func:`replace`). The files it names
    (``extends``, an objective's encoder) must lie in the zoo, the working directory, the named file's
    folder or one of ``allow_paths``. ``compat`` ("none" or an overlay name) replaces the compatibility
    overlay the blueprint and variant choose (see ``vitdsl.blocks.compat``)."""
    if isinstance(path_or_name, BlueprintBase):
        bp = path_or_name
    else:
        outer = confine.active()
        path = find(path_or_name, trusted=outer is None)  # the file the user named is their choice
        roots = confine.roots_for(path, allow_paths) if outer is None else outer
        with confine.within(roots):
            data, source = _read_with_extends(path)
            bp = from_data(data, source, str(path))
    bp = bp.configured(variant, overrides, replace)
    return bp if compat is None else bp.overlay(compat)
