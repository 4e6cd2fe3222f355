"""The layer items' grammar: one pydantic model per kind of item (a block, ``repeat``, ``stages``,
``parallel``) with its keys, their types and what they mean — the loader checks items against them, the
expander checks each value again once its ``$references`` are evaluated, ``replace`` keeps what they
allow, and ``vitdsl schema`` prints them — and the names and paths the items get.

Layer items (each a mapping):

* a block — ``{<block>: {fields} | scalar, name?: str, from?: str | [str], share?: ...}``
* ``{repeat: N, layers: [...], name?: str}`` — the layers N times; ``$index`` is the iteration (0-based);
  N = 0 leaves them out (a layer kept in some stages only)
* ``{stages: {param: [v0, v1, ...], ...}, layers: [...], name?: str}`` — one copy of the layers per
  list element, with each listed param bound to that element and ``$stage`` to the stage index
* ``{parallel: N | [name, ...], layers: [...], merge?: add|mean|concat|none, residual?: bool}`` — N copies of
  the layers side by side on the same input (``$branch`` is the copy), joined by a merge (with the input
  when residual); named branches are paths of their own, and ``merge: none`` leaves them apart

Any item may carry ``when: <bool>`` (skipped when false) and ``from: <name>`` (its input: the most
recent earlier item of that name, so a name reused in a repeat reads the previous iteration's — a
stream); a repeat may carry ``layer_dropout: p`` (whole iterations skipped while training). A block may
carry ``share: <name>`` or ``share: {with: <name>, params: [part, ...]}``: it uses the weights (all, or
the named parts) of an earlier block; naming itself means iteration 0's of the innermost repeat.

Every node gets a path from the names of the items around it (``stages.2.blocks.0.attn``): an item's
``name``, or else its block type (``mlp``; ``mlp_1`` for the second unnamed one in the same list),
``blocks`` for a repeat, ``stages`` for stages and ``branches`` for a parallel. Repeat iterations,
stages and branches add their index (a named branch its name). The path is also the node's place in the
compiled module, so state_dict keys read the same.
"""
from __future__ import annotations

import re
from typing import Annotated, Any, Callable, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, TypeAdapter, ValidationError
from pydantic.json_schema import WithJsonSchema
from pydantic.types import StringConstraints
from typing_extensions import TypedDict

from ..errors import VitdslError, suggest
from . import limits
from .expr import is_reference
from .invalid import Wording, convert
from .kinds import BlueprintBase
from .reserved import reserved_reason

NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")  # a leading _ is PyTorch's (_modules, _parameters ...)
REFERENCE = {"type": "string", "pattern": r"^\$", "description": "a $param reference or ${expression}"}
Reference = Annotated[str, StringConstraints(pattern=r"^\$"), WithJsonSchema(REFERENCE)]


class _Invalid(ValueError):
    """A rule's refusal, with the hint the error is to carry (see ``invalid.convert``)."""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.hint = hint


def _rule(check: Callable[[Any], Any]) -> BeforeValidator:
    """A value's rule; a reference passes until it is evaluated, and the expander checks its value then."""
    def run(v: Any) -> Any:
        if not is_reference(v):
            check(v)
        return v

    return BeforeValidator(run)


def _count(key: str, minimum: int) -> BeforeValidator:
    def check(n):
        if not isinstance(n, int) or isinstance(n, bool) or n < minimum:
            raise _Invalid(f"{key} takes a whole number ≥ {minimum}, got {n!r}")
        if n > limits.BLOCKS:
            raise _Invalid(f"{key} {n:,} is more than a blueprint's {limits.BLOCKS:,} blocks")

    return _rule(check)


def _flag(key: str) -> BeforeValidator:
    def check(v):
        if not isinstance(v, bool):
            raise _Invalid(f"'{key}' takes true or false, got {v!r}")

    return _rule(check)


def _name(v: Any) -> None:
    if v is None:  # `name:` left empty: no name
        return
    if not isinstance(v, str) or not NAME.match(v):
        raise _Invalid(f"name {v!r} is not a valid identifier",
                       "use letters, digits and underscores, starting with a letter")
    if reserved_reason(v):
        raise _Invalid(f"'{v}' cannot name a layer: {reserved_reason(v)}", "choose another name")


def _names(v: Any) -> list[str]:
    """A `from` value as its list of names."""
    names = [v] if isinstance(v, str) else v
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise _Invalid("'from' takes a layer name or a list of names")
    return names


def _one_name(v: Any) -> None:
    if len(_names(v)) != 1:
        raise _Invalid("'from' on a repeat or stages item takes one name")


def _probability(p: Any) -> None:
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 <= p < 1:
        raise _Invalid(f"layer_dropout takes a probability in [0, 1), got {p!r}")


def _merge(mode: Any) -> None:
    if mode not in ("add", "mean", "concat", "none"):
        raise _Invalid(f"merge takes add, mean, concat or none, got {mode!r}")


def _stages(table: Any) -> None:
    if not isinstance(table, dict) or not table:
        raise _Invalid("stages takes a mapping of parameter name to a list, one value per stage",
                       "e.g. stages: {dim: $dims, depth: $depths}")
    if any(is_reference(v) for v in table.values()):
        return  # its lengths are known once evaluated
    lengths = {k: len(v) if isinstance(v, list) else None for k, v in table.items()}
    if None in lengths.values() or len(set(lengths.values())) != 1:
        listing = ", ".join(f"{k}: {'not a list' if n is None else n}" for k, n in lengths.items())
        raise _Invalid(f"stages needs lists of one length ({listing})")


def _branches(v: Any) -> None:
    if isinstance(v, list):
        if not v:
            raise _Invalid("parallel takes a whole number ≥ 1 or a list of branch names, got []")
        for name in v:
            _name(name)
        if len(set(v)) != len(v):
            raise _Invalid(f"parallel names a branch twice: {v}")
        return
    _count("parallel", 1).func(v)


def _share(raw: Any) -> None:
    form = "'share' takes a block name, or {with: NAME, params: [part, ...]}"
    if isinstance(raw, str):
        return
    if not (isinstance(raw, dict) and set(raw) == {"with", "params"} and isinstance(raw["with"], str)):
        raise _Invalid(form + f", got {raw!r}", "e.g. share: attn, or share: {with: attn, params: [rel_pos_bias]}")
    parts = [raw["params"]] if isinstance(raw["params"], str) else raw["params"]
    if not isinstance(parts, list) or not parts or not all(
            isinstance(p, str) and all(NAME.match(s) or s.isdigit() for s in p.split(".")) for p in parts):
        raise _Invalid(f"share: params takes a list of parameter or submodule names, got {raw['params']!r}",
                       "e.g. share: {with: attn, params: [rel_pos_bias]}")
    for a in parts:
        for b in parts:
            if a != b and b.startswith(a + ".") or a == b and parts.count(a) > 1:
                raise _Invalid(f"share: params names '{b}' twice (it is part of '{a}')" if a != b else
                               f"share: params names '{a}' twice")


def share_target(raw: str | dict) -> tuple[str, tuple[str, ...] | None]:
    """A checked ``share`` value as (the block named, the parts shared or None for all)."""
    if isinstance(raw, str):
        return raw, None
    parts = raw["params"]
    return raw["with"], tuple([parts] if isinstance(parts, str) else parts)


Flag = Annotated[bool | Reference, _flag("when")]
ShareParts = TypedDict("ShareParts", {"with": str, "params": list[str] | str})


class Item(BaseModel):
    """What every layer item may carry."""

    # never validated whole (each key is, by its field's rule: ``checked``), so no validator is built
    model_config = ConfigDict(extra="forbid", populate_by_name=True, defer_build=True)

    name: Annotated[str | None, _rule(_name)] = Field(
        None, description="the item's name: its path segment, and what `from`, `share` and `output` refer to",
        json_schema_extra={"pattern": NAME.pattern})
    from_: Annotated[str | list[str] | Reference | None, _rule(_names)] = Field(
        None, alias="from", description="its input: the most recent earlier item of that name (a list for "
                                        "blocks of several inputs); `input` is the network's input")
    when: Flag = Field(True, description="false: the item is left out")


class BlockItem(Item):
    """A block: its type is the key (``mlp: {mult: 4}``), its fields the value."""

    share: Annotated[str | ShareParts | Reference | None, _rule(_share)] = Field(
        None, description="use the weights of an earlier block (all, or the named parts); naming the block "
                          "itself: iteration 0's, in every iteration of the innermost repeat")


class _Structure(Item):
    from_: Annotated[str | Reference | None, _rule(_one_name)] = Field(
        None, alias="from", description="its input: the most recent earlier item of that name")
    layers: list[Any] = Field(description="the layer items it holds")


class RepeatItem(_Structure):
    """The layers, repeated; ``$index`` is the iteration."""

    repeat: Annotated[Annotated[int, Field(ge=0)] | Reference, _count("repeat", 0)] = Field(
        description="how many times (0 leaves the layers out)")
    layer_dropout: Annotated[Annotated[float, Field(ge=0, lt=1)] | Reference, _rule(_probability)] = Field(
        0.0, description="while training, each iteration is skipped whole with this probability")


class StagesItem(_Structure):
    """One copy of the layers per stage; the listed params are bound per stage, ``$stage`` to its index."""

    stages: Annotated[dict[str, list[Any] | Reference] | Reference, _rule(_stages)] = Field(
        description="parameter name → one value per stage, e.g. {dim: $dims, depth: $depths}")


class ParallelItem(_Structure):
    """Copies of the layers side by side on one input, merged; ``$branch`` is the copy's index."""

    parallel: Annotated[Annotated[int, Field(ge=1)] | list[str] | Reference, _rule(_branches)] = Field(
        description="how many copies, or their names (each branch a path of its own, and what a later "
                    "`from` reads)")
    from_: Annotated[str | list[str] | Reference | None, _rule(_names)] = Field(
        None, alias="from", description="its input: an earlier item's name, or one name per branch")
    merge: Annotated[Literal["add", "mean", "concat", "none"] | Reference, _rule(_merge)] = Field(
        "add", description="how the branches are joined; none: left apart (a later `from` reads each by "
                           "name; the next item reads the last)")
    residual: Annotated[bool | Reference, _flag("residual")] = Field(
        False, description="the input joins the merge too")


STRUCTURE: dict[str, type[_Structure]] = {"repeat": RepeatItem, "stages": StagesItem, "parallel": ParallelItem}
ITEMS: dict[str, type[Item]] = {"block": BlockItem, **STRUCTURE}


def keys(model: type[BaseModel]) -> set[str]:
    """The keys an item of this model may have, as written."""
    return {f.alias or n for n, f in model.model_fields.items()}


ITEM_KEYS = {kind: keys(model) - {kind} for kind, model in ITEMS.items()}  # besides the kind's own key
EXTRA_KEYS = set().union(*ITEM_KEYS.values())
_ADAPTERS: dict[tuple[type, str], TypeAdapter] = {}


_VALUE = Wording(unknown="unknown key '{key}'", keys="keys", invalid="{msg}")  # a rule's message says it all


def _field(kind: str, key: str) -> tuple[type[Item], Any]:
    model = ITEMS[kind if kind in STRUCTURE else "block"]
    return model, next(f for n, f in model.model_fields.items() if (f.alias or n) == key)


def default(kind: str, key: str) -> Any:
    """What a ``kind`` item means when it leaves ``key`` out."""
    return _field(kind, key)[1].default


def checked(kind: str, key: str, value: Any, bp: BlueprintBase, where: tuple, path: str | None = None) -> Any:
    """``value`` (evaluated) of the key ``key`` of a ``kind`` item (a block's name for a block) at ``where``,
    checked by the model's rule for that key; the error points at the key's value."""
    model, field = _field(kind, key)
    adapter = _ADAPTERS.get((model, key))
    if adapter is None:
        adapter = _ADAPTERS[(model, key)] = TypeAdapter(Annotated[(field.annotation, *field.metadata)])
    try:
        adapter.validate_python(value)
    except ValidationError as e:
        raise convert(e, model, _VALUE, bp.source, where + (key,), path) from None
    return value


def _registry():
    from ..blocks.plugins import installed  # the library, and installed packages' blocks

    return installed()


def classify(item: Any, where: tuple, bp: BlueprintBase) -> str:
    """'repeat', 'stages', 'parallel' or the block name of a layer item, its keys checked against its model;
    raises on malformed items."""
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
        from ..blocks.base import unknown_block_hint

        raise VitdslError(f"unknown block '{key}'", location=at, hint=unknown_block_hint(key, registry))
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
    if "name" in item:  # the other values are checked once evaluated, where the expander knows the path
        checked(kind, "name", item["name"], bp, where)
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


def item_names(items: list, branches: bool = False) -> list[str]:
    """The names of the layer items (with ``branches``, a parallel's named branches too), nested ones
    included, in order."""
    out = []
    for item in items:
        if isinstance(item, dict):
            if isinstance(item.get("name"), str):
                out.append(item["name"])
            if branches and isinstance(item.get("parallel"), list):
                out += [b for b in item["parallel"] if isinstance(b, str)]
            if isinstance(item.get("layers"), list):
                out += item_names(item["layers"], branches)
    return out
