"""YAML in, plain Python data out, with the file:line:col of every value kept on the side.

Values are ordinary dicts, lists and scalars (so the rest of the code never sees YAML types); the
positions live in a :class:`SourceMap` keyed by the value's path in the document, e.g.
``("layers", 3, "local-attn", "window")``.
"""
from __future__ import annotations

import hashlib
from collections import OrderedDict
from pathlib import Path
from typing import Any

import yaml

from ..errors import Location, VitdslError, clip
from . import confine, limits

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_scalars = yaml.constructor.SafeConstructor()
# The tags a blueprint may carry, written or implied: plain data only (no timestamps, binary, sets, objects).
_TAGS = {f"tag:yaml.org,2002:{t}" for t in ("str", "int", "float", "bool", "null", "map", "seq")}
_TEXTS: OrderedDict[str, list[str]] = OrderedDict()  # the lines of the texts parsed, to quote in errors


def quoted_line(name: str, line: int) -> str | None:
    """Line ``line`` of a text this process parsed as a blueprint, or None: errors quote only what was read
    as a blueprint, never re-read a file by name (it may have changed, or never been a blueprint)."""
    lines = _TEXTS.get(name)
    return lines[line - 1] if lines is not None and 0 < line <= len(lines) else None


def _remember(name: str, text: str) -> None:
    _TEXTS[name] = text.splitlines()
    _TEXTS.move_to_end(name)
    while len(_TEXTS) > 64:
        _TEXTS.popitem(last=False)

Key = tuple  # a path into the document: str keys and int indices


class SourceMap:
    """Where each value of a (possibly merged) document was written."""

    def __init__(self, positions: dict[Key, Location] | None = None, keys: dict[Key, Location] | None = None):
        self.positions: dict[Key, Location] = dict(positions or {})
        self.keys: dict[Key, Location] = dict(keys or {})  # where the key of a mapping entry is written

    def find_key(self, path: Key) -> Location | None:
        """The location of the key that names ``path`` (for 'unknown key' errors)."""
        return self.keys.get(tuple(path)) or self.find(path)

    def find(self, path: Key) -> Location | None:
        """The location of ``path``, or of its nearest written ancestor."""
        path = tuple(path)
        while True:
            if path in self.positions:
                return self.positions[path]
            if not path:
                return None
            path = path[:-1]

    def merged(self, other: "SourceMap") -> "SourceMap":
        return SourceMap({**self.positions, **other.positions}, {**self.keys, **other.keys})

    def placed(self, path: Key, where: "Location | SourceMap", keep: tuple[str, ...] = ()) -> "SourceMap":
        """This map with the value at ``path`` now written elsewhere: at one location (a command-line
        value), or where ``where`` (a map of that value alone) says; entries under the keys in ``keep`` stay."""
        n = len(path)

        def stays(k: Key) -> bool:
            return k[:n] != path or len(k) > n and k[n] in keep

        positions = {k: v for k, v in self.positions.items() if stays(k)}
        keys = {k: v for k, v in self.keys.items() if stays(k) or k == path}
        if isinstance(where, SourceMap):
            positions.update({path + k: v for k, v in where.positions.items()})
            keys.update({path + k: v for k, v in where.keys.items()})
        else:
            positions[path] = where
        return SourceMap(positions, keys)

    def moved(self, src: Key, dst: Key) -> "SourceMap":
        """This map with what is written under ``src`` standing for the value at ``dst`` too (a variant's
        value that replaces a parameter)."""
        n = len(src)
        return self.placed(dst, SourceMap({k[n:]: v for k, v in self.positions.items() if k[:n] == src},
                                          {k[n:]: v for k, v in self.keys.items() if k[:n] == src}))


class _Walk:
    """Counts what a document expands to while it is walked: aliases make a few lines stand for millions
    of values (billion laughs) or for themselves (a recursive alias), and both must be refused early."""

    def __init__(self, name: str):
        self.name, self.nodes, self.open = name, 0, set()

    def enter(self, node: yaml.Node, depth: int) -> None:
        self.nodes += 1
        if self.nodes > limits.YAML_NODES:
            raise VitdslError(f"the document expands to more than {limits.YAML_NODES:,} values",
                              location=_loc(node, self.name),
                              hint="YAML aliases ('*name') repeat what they name; a blueprint needs far fewer values")
        if depth > limits.YAML_DEPTH:
            raise VitdslError(f"the document nests deeper than {limits.YAML_DEPTH} levels",
                              location=_loc(node, self.name))
        if id(node) in self.open:
            raise VitdslError("a YAML alias refers to a value that contains it", location=_loc(node, self.name),
                              hint="an alias ('*name') may only repeat a finished value")
        if node.tag not in _TAGS:
            raise VitdslError(f"the YAML tag '{node.tag}' is not allowed in a blueprint",
                              location=_loc(node, self.name),
                              hint="a blueprint holds plain mappings, lists, text, numbers, true/false and null; "
                                   "quote a value to keep it text")


def _scalar(node: yaml.ScalarNode, name: str) -> Any:
    shown = clip(node.value, 40)
    if node.tag.endswith(":int") and len(node.value) > 40:  # Python refuses to read very long ones anyway
        raise VitdslError(f"the number {shown} is beyond 64-bit integers", location=_loc(node, name))
    # inf, nan and integers beyond int64 are read as they are: the field that takes them refuses them
    # with its block and field name (BlockSpec.check_number)
    return _scalars.construct_object(node)


def _walk(node: yaml.Node, path: Key, name: str, positions: dict[Key, Location], keys: dict[Key, Location],
          walk: _Walk) -> Any:
    walk.enter(node, len(path))
    positions[path] = Location(name, node.start_mark.line + 1, node.start_mark.column + 1)
    if isinstance(node, yaml.MappingNode):
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                raise VitdslError("YAML merge keys ('<<') are not supported; use 'extends' or params",
                                  location=_loc(key_node, name))
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag not in _TAGS:
                raise VitdslError("a mapping key must be a plain name", location=_loc(key_node, name))
            key = key_node.value
            if key in out:
                raise VitdslError(f"duplicate key '{key}'", location=_loc(key_node, name),
                                  hint="each key may appear once per mapping; remove one of them")
            keys[path + (key,)] = _loc(key_node, name)
            walk.open.add(id(node))
            out[key] = _walk(value_node, path + (key,), name, positions, keys, walk)
            walk.open.discard(id(node))
        return out
    if isinstance(node, yaml.SequenceNode):
        walk.open.add(id(node))
        out = [_walk(v, path + (i,), name, positions, keys, walk) for i, v in enumerate(node.value)]
        walk.open.discard(id(node))
        return out
    return _scalar(node, name)


def _loc(node: yaml.Node, name: str) -> Location:
    return Location(name, node.start_mark.line + 1, node.start_mark.column + 1)


def parse_yaml(text: str, name: str = "<string>") -> tuple[Any, SourceMap]:
    """Parse one YAML document into plain data and its source map."""
    if len(text) > limits.FILE_BYTES:
        raise VitdslError(f"the blueprint is {len(text):,} characters long, more than {limits.FILE_BYTES:,}",
                          location=Location(name, 1, 1))
    _remember(name, text)
    try:
        node = yaml.compose(text, Loader=_Loader)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        loc = Location(name, mark.line + 1, mark.column + 1) if mark else None
        problem = e.problem or e.context or "malformed YAML"
        raise VitdslError(f"malformed YAML: {problem}", location=loc,
                          hint="check indentation, colons and brackets around this line") from None
    except yaml.YAMLError as e:
        raise VitdslError(f"malformed YAML: {e}", location=Location(name, 1, 1)) from None
    except RecursionError:  # the pure-Python parser, where libyaml is missing, recurses per level
        raise VitdslError(f"the document nests deeper than {limits.YAML_DEPTH} levels",
                          location=Location(name, 1, 1)) from None
    positions: dict[Key, Location] = {}
    keys: dict[Key, Location] = {}
    if node is None:
        return None, SourceMap({(): Location(name, 1, 1)})
    return _walk(node, (), name, positions, keys, _Walk(name)), SourceMap(positions, keys)


def read_text(path: Path, what: str = "blueprint") -> str:
    """A file's text, refused clearly when it is too large, binary or not UTF-8 (read only that far)."""
    try:
        with open(path, "rb") as f:
            raw = f.read(limits.FILE_BYTES + 1)
    except OSError as e:
        raise VitdslError(f"cannot read {what} '{path}': {e.strerror or e}") from None
    if len(raw) > limits.FILE_BYTES:
        raise VitdslError(f"{what} '{path}' is larger than {limits.FILE_BYTES:,} bytes",
                          hint="a blueprint is a short text file; is this a checkpoint or a data file?")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise VitdslError(f"{what} '{path}' is not UTF-8 text (byte {e.start:,} cannot be read)",
                          hint="a blueprint is a YAML text file; save it as UTF-8") from None
    if "\x00" in text:
        raise VitdslError(f"{what} '{path}' is a binary file, not YAML text",
                          hint="a blueprint is a YAML text file; a checkpoint is read with vitdsl.load_checkpoint "
                               "(or vitdsl.checkpoint.read(path).blueprint for its blueprint alone)")
    return text


def text_digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def read_yaml(path: str | Path) -> tuple[Any, SourceMap]:
    path = Path(path)
    text = read_text(path)
    if confine.RECORDINGS:
        confine.note("files", str(path.resolve()), text_digest(text))
    return parse_yaml(text, str(path))
