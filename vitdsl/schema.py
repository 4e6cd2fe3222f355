"""The JSON Schema of the blueprint format, generated from the Blueprint model, the layer items' grammar
(vitdsl.blueprint.items) and the block specs.

Any block field may also hold a ``$param`` reference or ``${expression}``, so every field accepts
a string starting with ``$`` besides its own type. Point a YAML language server at this schema
(``# yaml-language-server: $schema=vitdsl.schema.json``) for completion and hover docs.
"""
from __future__ import annotations

from typing import Any

from .blueprint.items import REFERENCE


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


def blueprint_schema() -> dict[str, Any]:
    from .blocks.plugins import installed
    from .blueprint.items import STRUCTURE
    from .blueprint.model import Blueprint

    registry = installed()  # the library, installed packages' blocks and those of --plugin
    top = Blueprint.model_json_schema(ref_template="#/$defs/{model}")
    defs: dict[str, Any] = top.setdefault("$defs", {})
    items = []
    for name in sorted(registry):
        defs[f"block:{name}"] = block_item_schema(name, registry[name], defs)
        items.append({"$ref": f"#/$defs/block:{name}"})
    items += [item_schema(model, defs) for model in STRUCTURE.values()]
    layers = {"type": "array", "items": {"$ref": "#/$defs/layer"}}
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
