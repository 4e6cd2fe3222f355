"""The layer items' grammar: which kinds of item there are, the keys each allows, and the names and paths
the items get.

Layer items (each a mapping):

* a block — ``{<block>: {fields} | scalar, name?: str, from?: str | [str]}``
* ``{repeat: N, layers: [...], name?: str}`` — the layers N times; ``$index`` is the iteration (0-based);
  N = 0 leaves them out (a layer kept in some stages only)
* ``{stages: {param: [v0, v1, ...], ...}, layers: [...], name?: str}`` — one copy of the layers per
  list element, with each listed param bound to that element and ``$stage`` to the stage index
* ``{parallel: N, layers: [...], merge?: add|concat, residual?: bool}`` — N copies of the layers side
  by side on the same input (``$branch`` is the copy), joined by a merge (with the input when residual)

Any item may carry ``when: <bool>`` (skipped when false) and ``from: <name>`` (its input: the most
recent earlier item of that name, so a name reused in a repeat reads the previous iteration's — a
stream); a repeat may carry ``layer_dropout: p`` (whole iterations skipped while training). A block may
carry ``share: <name>`` or ``share: {with: <name>, params: [part, ...]}``: it uses the weights (all, or
the named parts) of an earlier block; naming itself means iteration 0's of the innermost repeat.

Every node gets a path from the names of the items around it (``stages.2.blocks.0.attn``): an item's
``name``, or else its block type (``mlp``; ``mlp_1`` for the second unnamed one in the same list),
``blocks`` for a repeat and ``stages`` for stages. Repeat iterations and stages add their index. The
path is also the node's place in the compiled module, so state_dict keys read the same.
"""
from __future__ import annotations

import re
from typing import Any

from ..errors import VitdslError, suggest
from .kinds import BlueprintBase
from .reserved import reserved_reason

STRUCTURE = ("repeat", "stages", "parallel")
COMMON_KEYS = {"name", "from", "when"}
ITEM_KEYS = {"block": COMMON_KEYS | {"share"}, "repeat": COMMON_KEYS | {"layers", "layer_dropout"},
             "stages": COMMON_KEYS | {"layers"}, "parallel": COMMON_KEYS | {"layers", "merge", "residual"}}
EXTRA_KEYS = set().union(*ITEM_KEYS.values())
NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")  # a leading _ is PyTorch's (_modules, _parameters ...)


def _registry():
    from .. import blocks  # noqa: F401  (registers the library)
    from ..blocks.base import REGISTRY

    return REGISTRY


def classify(item: Any, where: tuple, bp: BlueprintBase) -> str:
    """'repeat', 'stages' or the block name of a layer item; raises on malformed items."""
    loc = bp.source.find(where)
    if not isinstance(item, dict):
        raise VitdslError("a layer must be a mapping such as '- mlp: {mult: 4}'", location=loc)
    registry = _registry()
    own = set().union(*(ITEM_KEYS[k] for k in item if k in STRUCTURE))  # a parallel's merge: is no block
    kinds = [k for k in item if k in STRUCTURE or k in registry and k not in own]
    unknown = [k for k in item if k not in registry and k not in STRUCTURE and k not in EXTRA_KEYS]
    if unknown:
        key = unknown[0]
        at = bp.source.find_key(where + (key,))
        if kinds:
            kind = "block" if kinds[0] not in STRUCTURE else kinds[0]
            allowed = sorted(ITEM_KEYS[kind] | {kinds[0]})
            raise VitdslError(f"unknown key '{key}' next to '{kinds[0]}'", location=at,
                              hint=suggest(key, allowed, "keys allowed here"))
        raise VitdslError(f"unknown block '{key}'", location=at, hint=suggest(key, registry, "blocks"))
    if len(kinds) != 1:
        if not kinds:
            raise VitdslError("this layer names no block", location=loc,
                              hint="write one block per list item, e.g. '- mlp: {mult: 4}'")
        raise VitdslError(f"one layer item names several blocks: {', '.join(kinds)}", location=loc,
                          hint="start a new list item ('- ') for each block")
    kind = kinds[0]
    allowed = ITEM_KEYS["block" if kind not in STRUCTURE else kind] | {kind}
    for k in item:
        if k not in allowed:
            raise VitdslError(f"'{k}' is not allowed next to '{kind}'", location=bp.source.find_key(where + (k,)),
                              hint=f"keys allowed here: {', '.join(sorted(allowed))}")
    if kind in STRUCTURE and not isinstance(item.get("layers"), list):
        raise VitdslError(f"'{kind}' needs a 'layers' list", location=loc)
    name = item.get("name")
    if name is not None and (not isinstance(name, str) or not NAME.match(name)):
        raise VitdslError(f"name {name!r} is not a valid identifier", location=bp.source.find(where + ("name",)),
                          hint="use letters, digits and underscores, starting with a letter")
    if name is not None and reserved_reason(name):
        raise VitdslError(f"'{name}' cannot name a layer: {reserved_reason(name)}",
                          location=bp.source.find(where + ("name",)), hint="choose another name")
    return kind


def check_structure(bp: BlueprintBase) -> None:
    """Structural checks that need no parameter values (run when a blueprint is loaded)."""

    def walk(items, where):
        for i, item in enumerate(items):
            kind = classify(item, where + (i,), bp)
            if kind in STRUCTURE:
                walk(item["layers"], where + (i, "layers"))

    walk(bp.layers, ("layers",))


def segments(items: list, where: tuple, bp: BlueprintBase) -> list[str]:
    kinds = [classify(it, where + (i,), bp) for i, it in enumerate(items)]
    defaults = [{"repeat": "blocks", "parallel": "branches"}.get(k, k.replace("-", "_")) for k in kinds]
    counts: dict[str, int] = {}
    for it, d in zip(items, defaults):
        if it.get("name") is None:
            counts[d] = counts.get(d, 0) + 1
    seen: dict[str, int] = {}
    out = []
    for i, (it, d) in enumerate(zip(items, defaults)):
        if it.get("name") is not None:
            seg = it["name"]
        elif counts[d] > 1:
            seg = f"{d}_{seen.get(d, 0)}"
            seen[d] = seen.get(d, 0) + 1
        else:
            seg = d
        if seg in out:
            raise VitdslError(f"two layers in the same list are named '{seg}'",
                              location=bp.source.find(where + (i,)), hint="give each a different name")
        out.append(seg)
    return out


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
