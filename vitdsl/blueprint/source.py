"""YAML in, plain Python data out, with the file:line:col of every value kept on the side.

Values are ordinary dicts, lists and scalars (so the rest of the code never sees YAML types); the
positions live in a :class:`SourceMap` keyed by the value's path in the document, e.g.
``("layers", 3, "local-attn", "window")``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from ..errors import Location, VitdslError

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_scalars = yaml.constructor.SafeConstructor()

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


def _walk(node: yaml.Node, path: Key, name: str, positions: dict[Key, Location], keys: dict[Key, Location]) -> Any:
    positions[path] = Location(name, node.start_mark.line + 1, node.start_mark.column + 1)
    if isinstance(node, yaml.MappingNode):
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                raise VitdslError("YAML merge keys ('<<') are not supported; use 'extends' or params",
                                  location=_loc(key_node, name))
            if not isinstance(key_node, yaml.ScalarNode):
                raise VitdslError("a mapping key must be a plain name", location=_loc(key_node, name))
            key = key_node.value
            if key in out:
                raise VitdslError(f"duplicate key '{key}'", location=_loc(key_node, name),
                                  hint="each key may appear once per mapping; remove one of them")
            keys[path + (key,)] = _loc(key_node, name)
            out[key] = _walk(value_node, path + (key,), name, positions, keys)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_walk(v, path + (i,), name, positions, keys) for i, v in enumerate(node.value)]
    return _scalars.construct_object(node)


def _loc(node: yaml.Node, name: str) -> Location:
    return Location(name, node.start_mark.line + 1, node.start_mark.column + 1)


def parse_yaml(text: str, name: str = "<string>") -> tuple[Any, SourceMap]:
    """Parse one YAML document into plain data and its source map."""
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
    positions: dict[Key, Location] = {}
    keys: dict[Key, Location] = {}
    if node is None:
        return None, SourceMap({(): Location(name, 1, 1)})
    return _walk(node, (), name, positions, keys), SourceMap(positions, keys)


def read_yaml(path: str | Path) -> tuple[Any, SourceMap]:
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise VitdslError(f"cannot read blueprint '{path}': {e.strerror}") from None
    return parse_yaml(text, str(path))
