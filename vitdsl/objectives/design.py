"""ObjectiveBlueprint → ObjectiveDesign: the encoder's checked graph, the roles of its layers, the
objective's settings and each part's checked graph. Everything is checked here, without torch."""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ..blueprint import confine
from ..blueprint.expand import value_at
from ..blueprint.expr import resolve_params
from ..blueprint.invalid import Wording, convert
from ..blueprint.kinds import BlueprintBase
from ..blueprint.load import find, from_data, load
from ..blueprint.model import Blueprint
from ..blueprint.source import SourceMap
from ..errors import VitdslError, suggest
from ..graph.build import Graph, build_graph, info, shared_params
from .roles import Finder, Roles
from .spec import REGISTRY, EncoderRef, ObjectiveSpec, Part


@dataclass
class ObjectiveDesign:
    blueprint: BlueprintBase
    params: dict[str, Any]
    spec: ObjectiveSpec
    encoder: Graph
    roles: Roles
    values: dict[str, Any]  # what the objective tells its parts ($patches, …)
    parts: dict[str, Graph | None]  # None: switched off by its `when`

    @property
    def trained_params(self) -> int:
        """Parameters the objective trains, from the shape rules alone (no torch): the encoder layers it runs,
        its parts and its own tensors (a teacher, an EMA copy, is not trained); ``trace_objective`` counts the
        same on the meta device."""
        keep = self.roles.keep
        encoder = sum(node.spec.count_params(*inputs) - (shared_params(self.encoder.nx, node) if node.share else 0)
                      for node, inputs, _ in self.encoder if not keep or node.path in keep)
        own = sum(math.prod(shape) for shape in self.spec.own_tensors(self).values())
        return encoder + sum(info(g)["params"] for g in self.parts.values() if g is not None) + own


def kinds() -> dict[str, type[ObjectiveSpec]]:
    from . import library  # noqa: F401  (registers the objectives)

    return REGISTRY


def apply(bp: BlueprintBase, variant: str | None = None, overrides: dict | None = None,
          replace: dict | None = None) -> BlueprintBase:
    """Variant and overrides written into ``params``; ``encoder.NAME`` overrides and ``replace`` go to the
    encoder's ``set`` and ``replace``."""
    own = {k: v for k, v in (overrides or {}).items() if not k.startswith("encoder.")}
    settings = {k.removeprefix("encoder."): v for k, v in (overrides or {}).items() if k.startswith("encoder.")}
    out = bp.with_params(variant, own)
    if settings or replace:
        ref = EncoderRef(blueprint=bp.encoder) if isinstance(bp.encoder, str) else bp.encoder
        ref = ref.model_copy(update={"set": {**ref.set, **settings}, "replace": {**ref.replace, **(replace or {})}})
        out = out.copied({"encoder": ref})
    return out


def _value(bp: BlueprintBase, raw: Any, params: dict, where: tuple) -> Any:
    return value_at(raw, params, bp.source, where)


def _sub_source(source: SourceMap, prefix: tuple) -> SourceMap:
    n = len(prefix)
    return SourceMap({k[n:]: v for k, v in source.positions.items() if k[:n] == prefix},
                     {k[n:]: v for k, v in source.keys.items() if k[:n] == prefix})


def load_encoder(bp: BlueprintBase, params: dict) -> Blueprint:
    ref = EncoderRef(blueprint=bp.encoder) if isinstance(bp.encoder, str) else bp.encoder
    where = ("encoder",) if isinstance(bp.encoder, str) else ("encoder", "blueprint")
    loc = bp.source.find(where)
    settings = _value(bp, ref.set, params, ("encoder", "set")) if ref.set else {}
    try:
        if isinstance(ref.blueprint, dict):
            base = from_data(ref.blueprint, _sub_source(bp.source, where), bp.file)
        else:
            here = Path(bp.file).parent if bp.file and confine.is_file(Path(bp.file)) else None
            base = find(ref.blueprint, relative_to=here)
        encoder = load(base, ref.variant, settings, ref.replace or None)
    except VitdslError as e:
        raise e.at(loc) from None
    # an objective is no network, and may name this very file
    return encoder.as_network(lambda why: VitdslError(f"the encoder {why}; the encoder must be a network blueprint",
                                                      location=loc, hint="name the network the objective "
                                                      "trains, e.g. encoder: vit"))


def _spec(bp: BlueprintBase, params: dict) -> ObjectiveSpec:
    registry = kinds()
    kind = bp.kind
    where = ("objective", kind)
    if kind not in registry:
        raise VitdslError(f"unknown objective '{kind}'", location=bp.source.find_key(where),
                          hint=suggest(kind, registry, "objectives"))
    cls = registry[kind]
    fields = _value(bp, bp.objective[kind], params, where) or {}
    if not isinstance(fields, dict):
        raise VitdslError(f"'{kind}' takes a mapping of settings, not {fields!r}", location=bp.source.find(where))
    try:
        return cls.model_validate(fields)
    except ValidationError as e:
        wording = Wording(unknown=f"unknown setting '{{key}}' for objective '{kind}'", keys="settings",
                          invalid=f"{kind}: {{field}}: {{msg}}", whole=f"{kind}: {{msg}}")
        raise convert(e, cls, wording, bp.source, where) from None


def _part(bp: BlueprintBase, name: str, part: Part, scope: dict, compat: str | None) -> Graph | None:
    where = ("parts", name)
    when = _value(bp, part.when, scope, where + ("when",))
    if not isinstance(when, bool):
        raise VitdslError(f"'when' takes true or false, got {when!r}", location=bp.source.find(where + ("when",)))
    if not when:
        return None
    # a part follows its encoder's compatibility overlay: a vit-pytorch encoder gets vit-pytorch's decoder
    data = {"name": f"{bp.name}.{name}", "input": part.input, "params": scope, "layers": part.layers, "compat": compat}
    if part.output is not None:
        data["output"] = part.output
    sub = Blueprint.model_validate(data)
    sub._source, sub._file = _sub_source(bp.source, where), bp.file
    try:
        sub.check_loaded()
        return build_graph(sub.resolve())
    except VitdslError as e:
        raise VitdslError(e.message, location=e.location or bp.source.find(where),
                          path=f"{name}.{e.path}" if e.path else name, hint=e.hint) from None


def resolve(bp: BlueprintBase, variant: str | None = None, overrides: dict | None = None) -> ObjectiveDesign:
    bp = apply(bp, variant, overrides)
    try:
        params = resolve_params(bp.params)
    except VitdslError as e:
        where = ("params", getattr(e, "param", None)) + getattr(e, "subpath", ())
        raise e.at(bp.source.find(tuple(p for p in where if p is not None))) from None
    spec = _spec(bp, params)
    encoder = build_graph(load_encoder(bp, params).resolve())
    finder = Finder(encoder, bp.kind, bp.source.find(("objective", bp.kind)))
    roles = spec.roles(finder)
    values = spec.values(finder, roles)
    clash = sorted(set(values) & set(params))
    if clash:
        raise VitdslError(f"parameter '{clash[0]}' has the name of a value the {bp.kind} objective gives its parts",
                          location=bp.source.find(("params", clash[0])),
                          hint=f"rename it; the objective's values: {', '.join(sorted(values))}")
    scope = {**params, **values}
    unknown = sorted(set(bp.parts) - set(spec.parts))
    if unknown:
        raise VitdslError(f"objective '{bp.kind}' has no part '{unknown[0]}'",
                          location=bp.source.find_key(("parts", unknown[0])),
                          hint=suggest(unknown[0], spec.parts, "its parts") if spec.parts
                          else f"'{bp.kind}' builds no networks of its own")
    missing = [p for p in spec.parts if p not in bp.parts and p not in spec.optional_parts]
    if missing:
        raise VitdslError(f"objective '{bp.kind}' needs part '{missing[0]}': {spec.parts[missing[0]]}",
                          location=bp.source.find(("parts",)) or bp.source.find(()))
    # an optional part left out is switched off, as by its `when`
    overlay = encoder.design.blueprint.compat
    parts = {name: _part(bp, name, bp.parts[name], scope, overlay) if name in bp.parts else None
             for name in spec.parts}
    try:
        spec.check_parts(finder, roles, parts)
    except VitdslError as e:
        name = e.path.split(".")[0] if e.path else None
        raise e.at(bp.source.find(("parts", name) if name else ("objective", bp.kind))) from None
    return ObjectiveDesign(bp, params, spec, encoder, roles, values, parts)
