"""The JSON Schema of the blueprint format, generated from the Blueprint model and the block specs.

Any block field may also hold a ``$param`` reference or ``${expression}``, so every field accepts
a string starting with ``$`` besides its own type. Point a YAML language server at this schema
(``# yaml-language-server: $schema=vitdsl.schema.json``) for completion and hover docs.
"""
from __future__ import annotations

from typing import Any

REFERENCE = {"type": "string", "pattern": r"^\$", "description": "a $param reference or ${expression}"}


def _accepting_refs(node: Any) -> Any:
    """Every typed value, at any depth (list items too), may also be a reference."""
    if isinstance(node, list):
        return [_accepting_refs(n) for n in node]
    if not isinstance(node, dict):
        return node
    node = {k: _accepting_refs(v) if k in ("items", "prefixItems", "anyOf") else v for k, v in node.items()}
    if "type" in node or "enum" in node or "const" in node:
        return {"anyOf": [node, REFERENCE]}
    return node


def _loosen(schema: dict[str, Any]) -> dict[str, Any]:
    props = schema.get("properties", {})
    for name, prop in props.items():
        props[name] = {"anyOf": [_accepting_refs(prop), REFERENCE],
                       **{k: prop[k] for k in ("description", "default") if k in prop}}
    return schema


FLAG = {"anyOf": [{"type": "boolean"}, REFERENCE]}
COMMON = {"name": {"type": "string"},
          "from": {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}, REFERENCE]},
          "when": {**FLAG, "description": "false: the item is left out"}}


SHARE = {"anyOf": [{"type": "string"}, REFERENCE,
                   {"type": "object", "properties": {"with": {"type": "string"},
                                                     "params": {"type": "array", "items": {"type": "string"}}},
                    "required": ["with", "params"], "additionalProperties": False}],
         "description": "use the weights of an earlier block (all, or the named parts); naming the block itself: "
                        "iteration 0's, in every iteration of the innermost repeat"}


def block_item_schema(name: str, cls) -> dict[str, Any]:
    spec = _loosen(cls.model_json_schema(ref_template="#/$defs/{model}"))
    spec.pop("title", None)
    defs = spec.pop("$defs", {})
    options: list[dict] = [spec, {"type": "null"}, REFERENCE]
    if cls.shorthand:
        options.insert(1, spec["properties"][cls.shorthand])
    item = {
        "type": "object",
        "description": (cls.__doc__ or "").strip().split("\n")[0],
        "properties": {name: {"anyOf": options}, **COMMON, "share": SHARE},
        "required": [name],
        "additionalProperties": False,
    }
    return item, defs


def blueprint_schema() -> dict[str, Any]:
    from .blocks import REGISTRY
    from .blueprint.model import Blueprint

    top = Blueprint.model_json_schema(ref_template="#/$defs/{model}")
    defs: dict[str, Any] = top.setdefault("$defs", {})
    items = []
    for name in sorted(REGISTRY):
        item, extra = block_item_schema(name, REGISTRY[name])
        defs.update(extra)
        defs[f"block:{name}"] = item
        items.append({"$ref": f"#/$defs/block:{name}"})
    count = {"anyOf": [{"type": "integer", "minimum": 1}, REFERENCE]}
    layers = {"type": "array", "items": {"$ref": "#/$defs/layer"}}
    items.append({"type": "object", "description": "the layers, repeated; $index is the iteration",
                  "properties": {"repeat": count, "layers": layers, **COMMON,
                                 "layer_dropout": {"anyOf": [{"type": "number", "minimum": 0, "maximum": 1},
                                                             REFERENCE]}},
                  "required": ["repeat", "layers"], "additionalProperties": False})
    items.append({"type": "object", "description": "one copy of the layers per stage; listed params bound per stage",
                  "properties": {"stages": {"anyOf": [{"type": "object"}, REFERENCE]}, "layers": layers, **COMMON},
                  "required": ["stages", "layers"], "additionalProperties": False})
    items.append({"type": "object", "description": "copies of the layers side by side on one input, merged; "
                                                   "$branch is the copy",
                  "properties": {"parallel": count, "layers": layers, **COMMON, "residual": FLAG,
                                 "merge": {"anyOf": [{"enum": ["add", "concat"]}, REFERENCE]}},
                  "required": ["parallel", "layers"], "additionalProperties": False})
    defs["layer"] = {"anyOf": items}
    top["properties"]["layers"] = {**layers, "description": top["properties"]["layers"].get("description", "")}
    top["properties"]["extends"] = {"type": "string", "description": "a blueprint file or zoo name to inherit from"}
    objective = _objective_schema(defs, layers)
    architecture = {k: v for k, v in top.items() if k != "$defs"}
    architecture["not"] = {"required": ["objective"]}
    defs["architecture"], defs["objective_blueprint"] = architecture, objective
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "title": "vitdsl blueprint",
            "description": "an architecture (input, layers) or an objective around an encoder "
                           "(objective, encoder, parts)",
            "anyOf": [{"$ref": "#/$defs/architecture"}, {"$ref": "#/$defs/objective_blueprint"}], "$defs": defs}


def _objective_schema(defs: dict[str, Any], layers: dict[str, Any]) -> dict[str, Any]:
    from .objectives import ObjectiveBlueprint
    from .objectives.design import kinds

    top = ObjectiveBlueprint.model_json_schema(ref_template="#/$defs/{model}")
    for name, model in top.pop("$defs", {}).items():
        defs.setdefault(name, model)
    defs["Part"]["properties"]["layers"] = {**layers, "description": defs["Part"]["properties"]["layers"].get(
        "description", "")}
    choices = []
    for kind, cls in sorted(kinds().items()):
        settings = _loosen(cls.model_json_schema(ref_template="#/$defs/{model}"))
        for name, model in settings.pop("$defs", {}).items():
            defs.setdefault(name, model)
        choices.append({"type": "object", "properties": {kind: {"anyOf": [settings, {"type": "null"}]}},
                        "required": [kind], "additionalProperties": False})
    top["properties"]["objective"] = {"anyOf": choices, "description": top["properties"]["objective"].get(
        "description", "")}
    return top
