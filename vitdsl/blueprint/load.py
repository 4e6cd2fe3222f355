"""Reading blueprints: files, zoo names, ``extends``, variants and ``--set`` overrides.

Merge rules for ``extends: base.yaml`` (a path relative to the extending file, or a zoo name):
mappings merge key by key, recursively (so ``params``, ``variants`` and ``input`` can be changed one
entry at a time); every other value — lists included, so ``layers`` — is replaced whole.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Mapping

from pydantic import ValidationError

from ..blocks.base import BlockSpec
from ..errors import Location, VitdslError, suggest
from . import confine, limits
from .confine import zoo_dir
from .model import Blueprint
from .source import SourceMap, parse_yaml, read_yaml


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


def _validation_error(e: ValidationError, source: SourceMap, prefix: tuple = (), model=Blueprint) -> VitdslError:
    # an unknown key first: 'layerz' explains the missing 'layers' better than the other way round
    err = min(e.errors(), key=lambda err: err["type"] != "extra_forbidden")
    loc = tuple(err["loc"])
    where = source.find(prefix + loc)
    field = ".".join(str(p) for p in loc)
    if err["type"] == "extra_forbidden":
        known = model.model_fields.keys()
        return VitdslError(f"unknown key '{loc[-1]}' in the blueprint", location=source.find_key(prefix + loc),
                           hint=suggest(str(loc[-1]), known, "blueprint keys") if len(loc) == 1 else None)
    if err["type"] == "missing":
        return VitdslError(f"missing required key '{field}'", location=where,
                           hint=model.model_fields[loc[0]].description if loc[0] in model.model_fields else None)
    msg = err["msg"].removeprefix("Value error, ")
    return VitdslError(f"'{field}': {msg}", location=where)


def from_data(data: Any, source: SourceMap | None = None, file: str | None = None) -> Blueprint:
    source = source or SourceMap()
    if not isinstance(data, dict):
        raise VitdslError("a blueprint must be a mapping with name, input and layers", location=source.find(()))
    if "extends" in data:
        raise VitdslError("'extends' needs a file: use vitdsl.load on a path", location=source.find(("extends",)))
    check_data(data, source)
    if "objective" in data:  # an objective around an encoder blueprint
        return _objective(data, source, file)
    try:
        bp = Blueprint.model_validate(data)
    except ValidationError as e:
        raise _validation_error(e, source) from None
    bp._source, bp._file, bp._roots = source, file, confine.active()
    from .expand import check_structure

    check_structure(bp)
    return bp


def _objective(data: dict, source: SourceMap, file: str | None):
    from ..objectives.design import kinds
    from ..objectives.spec import ObjectiveBlueprint

    kinds()
    try:
        bp = ObjectiveBlueprint.model_validate(data)
    except ValidationError as e:
        raise _validation_error(e, source, model=ObjectiveBlueprint) from None
    bp._source, bp._file, bp._roots = source, file, confine.active()
    return bp


def check_data(data: Any, source: SourceMap | None = None) -> None:
    """Refuse data that no YAML file could hold within the limits: built in Python or carried by a
    checkpoint, it skipped the reader's checks (depth, size, key and value types). Numbers are checked
    by the fields that take them."""
    source = source or SourceMap()
    count, stack = 0, [(data, ())]
    while stack:
        value, path = stack.pop()
        count += 1
        where = source.find(path)
        if count > limits.YAML_NODES or len(path) > limits.YAML_DEPTH:
            raise VitdslError(f"the blueprint holds more than {limits.YAML_NODES:,} values or nests deeper than "
                              f"{limits.YAML_DEPTH} levels", location=where)
        if isinstance(value, dict):
            for k, v in value.items():
                if not isinstance(k, str):
                    raise VitdslError(f"a mapping key must be a name, got {k!r}", location=where)
                stack.append((v, path + (k,)))
        elif isinstance(value, (list, tuple)):
            stack.extend((v, path + (i,)) for i, v in enumerate(value))
        elif isinstance(value, str) and len(value) > limits.FILE_BYTES:
            raise VitdslError(f"a text of {len(value):,} characters is longer than a blueprint may be", location=where)
        elif not isinstance(value, (str, int, float, bool, type(None))) and not hasattr(value, "to_item"):
            raise VitdslError(f"a blueprint holds plain data; {type(value).__name__} is not", location=where)


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


def apply(bp: Blueprint, variant: str | None = None, overrides: Mapping[str, Any] | None = None) -> Blueprint:
    """The blueprint with a variant's and the overrides' values written into ``params``; an error in such a
    value points at the variant's line, or names the override."""
    params, source = dict(bp.params), bp.source
    if variant is not None:
        if variant not in bp.variants:
            raise VitdslError(f"blueprint '{bp.name}' has no variant '{variant}'",
                              hint=suggest(variant, bp.variants, "variants") if bp.variants
                              else "this blueprint defines no variants")
        for k, v in bp.variants[variant].items():
            if k not in params:
                raise VitdslError(f"variant '{variant}' sets '{k}', which is not a parameter",
                                  location=bp.source.find(("variants", variant, k)),
                                  hint=suggest(k, params, "parameters"))
            params[k] = v
            source = source.moved(("variants", variant, k), ("params", k))
    for k, v in (overrides or {}).items():
        if k not in params:
            raise VitdslError(f"cannot set '{k}': blueprint '{bp.name}' has no such parameter",
                              hint=suggest(k, params, "parameters"))
        params[k] = v
        source = source.placed(("params", k), Location(f"override '{k}'", 0, 0))
    if params == bp.params:
        return bp
    check_data(params)
    out = bp.model_copy(update={"params": params})
    out._source, out._file, out._roots = source, bp._file, bp._roots
    return out


KEPT = ("name", "from", "when", "share")  # what a replaced item keeps of the item it replaces


def item_names(items: list) -> list[str]:
    """The names of the layer items, nested ones included, in order."""
    out = []
    for item in items:
        if isinstance(item, dict):
            if isinstance(item.get("name"), str):
                out.append(item["name"])
            if isinstance(item.get("layers"), list):
                out += item_names(item["layers"])
    return out


def _swap(items: list, name: str, new: dict, where: tuple = ("layers",)) -> tuple[list, list[tuple]]:
    """The items with those named ``name`` replaced, and the places replaced."""
    out, hits = [], []
    for i, item in enumerate(items):
        if isinstance(item, dict) and item.get("name") == name:
            block = not any(k in new for k in ("repeat", "stages", "parallel"))  # only a block can share
            item = {**new, **{k: item[k] for k in KEPT if k in item and (block or k != "share")}}
            hits.append(where + (i,))
        elif isinstance(item, dict) and isinstance(item.get("layers"), list):
            layers, found = _swap(item["layers"], name, new, where + (i, "layers"))
            item, hits = {**item, "layers": layers}, hits + found
        out.append(item)
    return out, hits


def replace(bp: Blueprint, replacements: Mapping[str, Any] | None) -> Blueprint:
    """The blueprint with every layer item named ``name`` (at any depth, in repeats and stages too) replaced
    by the given item — a block (``{mlp: {mult: 2}}``, a user-registered one too) or a ``repeat``/``stages``
    item with its layers — which keeps the replaced item's name, from and when (and a block its share)."""
    if not replacements:
        return bp
    layers, source = bp.to_dict()["layers"], bp.source
    for name, new in replacements.items():
        if isinstance(new, BlockSpec):  # a spec object from Python: its plain item
            new = new.to_item()
        if not isinstance(new, dict) or not new:
            raise VitdslError(f"replace '{name}': the replacement must be a layer item (a mapping), got {new!r}",
                              hint="e.g. replace={'ff': {'mlp': {'mult': 2}}}, or --replace ff='{mlp: {mult: 2}}'")
        kept = [k for k in KEPT if k in new]
        if kept:
            raise VitdslError(f"replace '{name}': the replacement sets {', '.join(kept)}, which it keeps from the "
                              "item it replaces", hint="leave name, from, when and share out of the replacement")
        layers, hits = _swap(layers, name, new)
        for place in hits:  # an error inside the new item names the replacement, not the old item's line
            source = source.placed(place, Location(f"replacement '{name}'", 0, 0), keep=KEPT)
        if not hits:
            raise VitdslError(f"cannot replace '{name}': no layer item of blueprint '{bp.name}' has that name",
                              hint=suggest(name, set(item_names(layers)), "named items") if item_names(layers)
                              else "this blueprint names no items; add 'name:' to the item to replace")
    return from_data({**bp.to_dict(), "layers": layers}, source, bp.file)


def parse_replace(text: str) -> tuple[str, Any]:
    """``name=item`` from the command line; the item is read as YAML (``ff='{mlp: {mult: 2}}'``)."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip() or not value.strip():
        raise VitdslError(f"replacement '{text}' is not of the form name=item",
                          hint="for example --replace ff='{mlp: {mult: 2}}'")
    key = key.strip()
    return key, parse_yaml(value, f"replacement '{key}'")[0]


def load(path_or_name: str | Path | Blueprint, variant: str | None = None,
         overrides: Mapping[str, Any] | None = None, replace: Mapping[str, Any] | None = None,
         allow_paths: Iterable[str | Path] = ()) -> Blueprint:
    """A Blueprint from a file path, a zoo name or a Blueprint, with a variant and overrides applied, and
    named layer items replaced (``replace={name: item}``, see :func:`replace`). The files it names
    (``extends``, an objective's encoder) must lie in the zoo, the working directory, the named file's
    folder or one of ``allow_paths``."""
    from ..objectives.spec import ObjectiveBlueprint

    if isinstance(path_or_name, (Blueprint, ObjectiveBlueprint)):
        bp = path_or_name
    else:
        outer = confine.active()
        path = find(path_or_name, trusted=outer is None)  # the file the user named is their choice
        roots = confine.roots_for(path, allow_paths) if outer is None else outer
        with confine.within(roots):
            data, source = _read_with_extends(path)
            bp = from_data(data, source, str(path))
    if isinstance(bp, ObjectiveBlueprint):
        from ..objectives.design import apply as apply_objective

        return apply_objective(bp, variant, overrides, replace)
    return apply(_replace(bp, replace), variant, overrides)


_replace = replace
