"""Replacing named layer items (``--replace``, ``replace=``) by other items, wherever they nest."""
from __future__ import annotations

from typing import Any, Mapping

from ..blocks.base import BlockSpec
from ..errors import Location, VitdslError, suggest
from .items import ITEM_KEYS, STRUCTURE, BlockItem, item_names
from .source import parse_yaml

# what a replaced item keeps of the item it replaces: the keys about its place, not its content (those a
# block item has besides its block; only a block shares, so `share` stays only where the new item has it)
KEPT = tuple(f.alias or n for n, f in BlockItem.model_fields.items())


def _swap(items: list, name: str, new: dict, where: tuple = ("layers",)) -> tuple[list, list[tuple]]:
    """The items with those named ``name`` replaced, and the places replaced."""
    out, hits = [], []
    for i, item in enumerate(items):
        if isinstance(item, dict) and item.get("name") == name:
            kind = next((k for k in new if k in STRUCTURE), "block")
            item = {**new, **{k: item[k] for k in KEPT if k in item and k in ITEM_KEYS[kind]}}
            hits.append(where + (i,))
        elif isinstance(item, dict) and isinstance(item.get("layers"), list):
            layers, found = _swap(item["layers"], name, new, where + (i, "layers"))
            item, hits = {**item, "layers": layers}, hits + found
        out.append(item)
    return out, hits


def replaced(bp, replacements: Mapping[str, Any] | None) -> Any:
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
    return type(bp).from_document({**bp.to_dict(), "layers": layers}, source, bp.file)


def parse_replace(text: str) -> tuple[str, Any]:
    """``name=item`` from the command line; the item is read as YAML (``ff='{mlp: {mult: 2}}'``)."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip() or not value.strip():
        raise VitdslError(f"replacement '{text}' is not of the form name=item",
                          hint="for example --replace ff='{mlp: {mult: 2}}'")
    key = key.strip()
    return key, parse_yaml(value, f"replacement '{key}'")[0]
