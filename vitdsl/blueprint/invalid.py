"""pydantic's ValidationError → one located VitdslError, for every model a blueprint holds (the blueprint's
top level, block specs, objective settings, layer items): each says what it calls its keys through a
:class:`Wording`, the rest — which error to report, where it points, the "did you mean" hint — is here."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, get_args

from pydantic import BaseModel, ValidationError

from ..errors import VitdslError, suggest
from .source import SourceMap


@dataclass(frozen=True)
class Wording:
    """Message templates; they may use {key} (an unknown key), {field} (the dotted field), {msg} (pydantic's
    reason) and {input} (the value given). A rule that raises a ValueError with a ``hint`` attribute gives the
    error that hint."""

    unknown: str
    keys: str  # what the hint calls the known keys: "fields", "settings", "blueprint keys"
    invalid: str
    whole: str = "{msg}"  # a reason that concerns no one field (a model validator's)
    missing: str | None = None  # None: a missing field reads as an invalid one


def _model_of(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model a field holds (``Budget | None`` → Budget), if any."""
    for t in (annotation, *get_args(annotation)):
        if isinstance(t, type) and issubclass(t, BaseModel):
            return t
    return None


def convert(e: ValidationError, model: type[BaseModel], wording: Wording, source: SourceMap,
            where: tuple = (), path: str | None = None, at_value: bool = False) -> VitdslError:
    """The error to report for ``e``, raised while validating ``model`` from the data at ``where`` in
    ``source``. ``at_value``: the data was a single value (a block's shorthand), so every error points at it."""
    # an unknown key first: 'layerz' explains the missing 'layers' better than the other way round
    err = min(e.errors(), key=lambda err: err["type"] != "extra_forbidden")
    loc = tuple(err["loc"])
    fields = model.model_fields
    if at_value:
        at = key_at = source.find(where)
    else:
        at, key_at = source.find(where + loc), source.find_key(where + loc)
    names: dict[str, Any] = {"field": ".".join(map(str, loc)), "msg": err["msg"].removeprefix("Value error, "),
                             "input": err.get("input"), "key": loc[-1] if loc else ""}
    if err["type"] == "extra_forbidden":
        if len(loc) == 1:
            return VitdslError(wording.unknown.format(**names), location=key_at, path=path,
                               hint=suggest(str(loc[-1]), fields, wording.keys))
        inner = _model_of(fields[loc[0]].annotation) if len(loc) == 2 and loc[0] in fields else None
        return VitdslError(f"unknown key '{loc[-1]}' in '{'.'.join(map(str, loc[:-1]))}'", location=key_at, path=path,
                           hint=suggest(str(loc[-1]), inner.model_fields, "keys") if inner else None)
    if err["type"] == "missing" and wording.missing is not None:
        info = fields.get(loc[0]) if loc else None
        return VitdslError(wording.missing.format(**names), location=at, path=path,
                           hint=info.description if info is not None else None)
    hint = getattr((err.get("ctx") or {}).get("error"), "hint", None)  # a rule's own (ValueError with .hint)
    return VitdslError((wording.invalid if loc else wording.whole).format(**names), location=at, path=path,
                       hint=hint)
