"""The JSON Schema of the blueprint format, generated from the Blueprint model, the layer items' grammar
(vitdsl.blueprint.items) and the block specs.

Any block field may also hold a ``$param`` reference or ``${expression}``, so every field accepts
a string starting with ``$`` besides its own type. Point a YAML language server at this schema
(``# yaml-language-server: $schema=vitdsl.schema.json``) for completion and hover docs.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .blueprint.items import REFERENCE, STRUCTURE

# The library's schema (no plugin blocks), shipped for editors: tools/docgen.py writes it, and checks it is current
SHIPPED = Path(__file__).with_name("blueprint.schema.json")


def schema_text(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


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


def item_schema(model, defs: dict[str, Any]) -> dict[str, Any]:
    """A layer item's schema, from its model in the blueprint's grammar (vitdsl.blueprint.items)."""
    item = model.model_json_schema(ref_template="#/$defs/{model}")
    defs.update(item.pop("$defs", {}))
    item.pop("title", None)
    item["description"] = item.get("description", "").replace("``", "`")  # the docstring's RST, as Markdown
    for prop in item["properties"].values():
        prop.pop("title", None)
    if "layers" in item["properties"]:  # the models' layers are lists of anything; here, of layer items
        item["properties"]["layers"]["items"] = {"$ref": "#/$defs/layer"}
    return item


def block_item_schema(name: str, cls, defs: dict[str, Any]) -> dict[str, Any]:
    from .blueprint.items import BlockItem

    spec = _loosen(cls.model_json_schema(ref_template="#/$defs/{model}"))
    spec.pop("title", None)
    defs.update(spec.pop("$defs", {}))
    options: list[dict] = [spec, {"type": "null"}, REFERENCE]
    if cls.shorthand:
        options.insert(1, spec["properties"][cls.shorthand])
    item = item_schema(BlockItem, defs)
    item["description"] = (cls.__doc__ or "").strip().split("\n")[0]
    item["properties"] = {name: {"anyOf": options}, **item["properties"]}
    item["required"] = [name]
    return item


def layer_schema(kinds: dict[str, str], defs: dict[str, Any]) -> dict[str, Any]:
    """A layer item: the schema its key selects (``if`` the key is there, ``then`` that item's schema), so an
    editor reports a wrong field at that field, not "matches none of 40 alternatives" at the whole item. A
    structure key wins over a block name (``merge:`` of a parallel item is its merge mode, not the block)."""
    structure = {"anyOf": [{"required": [key]} for key in STRUCTURE]}
    chosen = [{"if": {"required": [key]} if key in STRUCTURE else {"required": [key], "not": structure},
               "then": {"$ref": f"#/$defs/{ref}"}} for key, ref in kinds.items()]
    return {"type": "object",
            "properties": {key: {"description": defs[ref].get("description", "")} for key, ref in kinds.items()},
            "anyOf": [{"required": [key]} for key in kinds], "allOf": chosen}


def blueprint_schema() -> dict[str, Any]:
    from .blocks.plugins import installed
    from .blueprint.model import Blueprint

    registry = installed()  # the library, installed packages' blocks and those of --plugin
    top = Blueprint.model_json_schema(ref_template="#/$defs/{model}")
    defs: dict[str, Any] = top.setdefault("$defs", {})
    kinds: dict[str, str] = {}  # an item's key → its schema's name in $defs
    for name in sorted(registry):
        defs[kinds.setdefault(name, f"block:{name}")] = block_item_schema(name, registry[name], defs)
    for key, model in STRUCTURE.items():
        defs[kinds.setdefault(key, f"item:{key}")] = item_schema(model, defs)
    layers = {"type": "array", "items": {"$ref": "#/$defs/layer"}}
    defs["layer"] = layer_schema(kinds, defs)
    top["properties"]["layers"] = {**layers, "description": top["properties"]["layers"].get("description", "")}
    top["properties"]["extends"] = {"type": "string", "description": "a blueprint file or zoo name to inherit from"}
    top["properties"]["input"].update(minProperties=1, maxProperties=1)  # one kind: image, volume, tokens …
    objective = _objective_schema(defs, layers)
    architecture = {k: v for k, v in top.items() if k not in ("$defs", "required")}
    # what extends another blueprint restates only what it changes; the rest must be there
    architecture["if"], architecture["else"] = {"required": ["extends"]}, {"required": top["required"]}
    architecture["not"] = {"required": ["objective"]}
    defs["architecture"], defs["objective_blueprint"] = architecture, objective
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "title": "vitdsl blueprint",
            "description": "an architecture (input, layers) or an objective around an encoder "
                           "(objective, encoder, parts)",
            # chosen by its key (as layer items are), so that an error is reported where it is
            "if": {"required": ["objective"]}, "then": {"$ref": "#/$defs/objective_blueprint"},
            "else": {"$ref": "#/$defs/architecture"}, "$defs": defs}


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
