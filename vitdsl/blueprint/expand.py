"""From a Blueprint to the flat list of block nodes the graph builder takes (the layer items' grammar and
their paths are described in ``items``).

"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from ..blocks.moved import moved
from ..errors import Location, VitdslError, suggest
from . import limits
from .expr import resolve_params, substitute
from .invalid import Wording, convert
from .items import checked, classify, default, item_names, segments, share_target
from .kinds import BlueprintBase

INPUT = "input"


@dataclass
class Node:
    path: str
    spec: Any  # a BlockSpec
    inputs: list[str]  # node paths, or INPUT
    location: Location | None
    repeats: tuple[tuple[str, int], ...] = ()  # enclosing (repeat path, iteration) pairs, outermost first
    share: "Share | None" = None  # whose weights this block uses


@dataclass(frozen=True)
class Share:
    """A block uses the weights of an earlier block (``owner``, a node path): all of them, or the named
    parts (submodules or tensors of its module, e.g. ``rel_pos_bias``)."""

    owner: str
    parts: tuple[str, ...] | None
    location: Location | None


@dataclass
class LayerDrop:
    """A repeat whose iterations are dropped whole while training (CaiT's layer dropout)."""

    path: str
    p: float
    iterations: list[list[str]]  # node paths of each iteration
    location: Location | None


@dataclass
class Design:
    """A blueprint with every parameter resolved: input shape, nodes in order, output node."""

    blueprint: BlueprintBase  # a plain Blueprint (model.py builds on this module)
    params: dict[str, Any]
    input_kind: str
    input_dims: tuple[int, ...]
    nodes: list[Node] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)  # node paths the network returns, in order
    layer_drops: list[LayerDrop] = field(default_factory=list)

    def node(self, path: str) -> Node:
        return next(n for n in self.nodes if n.path == path)


def value_at(raw: Any, scope: dict, source, where: tuple) -> Any:
    """``raw`` with its ``$name`` and ``${expression}`` references resolved in ``scope``; an error points at
    ``where`` in ``source`` (a SourceMap)."""
    def lookup(name):
        if name in scope:
            return scope[name]
        raise VitdslError(f"unknown parameter '${name}'", hint=suggest(name, scope, "parameters"))

    try:
        return substitute(raw, lookup, lambda: sorted(scope))
    except VitdslError as e:
        raise e.at(source.find(where + getattr(e, "subpath", ()))) from None


class _Expander:
    def __init__(self, bp: BlueprintBase):
        self.bp = bp
        self.nodes: list[Node] = []
        self.outputs: dict[str, str] = {}  # item path -> node path of its output, in completion order
        self.skipped: set[str] = set()  # names of items switched off by `when`
        self.layer_drops: list[LayerDrop] = []
        self.all_names: set[str] = set()

    def value(self, raw: Any, scope: dict, where: tuple) -> Any:
        return value_at(raw, scope, self.bp.source, where)

    def key(self, item: dict, kind: str, key: str, scope: dict, here: tuple, path: str) -> Any:
        """The value of an item's key, evaluated and checked by the key's rule in the item's model (which
        also says what a missing key means)."""
        if key not in item:
            return default(kind, key)
        value = self.value(item[key], scope, here + (key,))
        return checked(kind, key, value, self.bp, here, path)

    def resolve(self, name: str, where: tuple, path: str) -> str:
        """The node a `from:` name refers to: the input, a full item path, or the most recent earlier
        item with that name."""
        if name == INPUT:
            return INPUT
        item_path = self.earlier(name)
        if item_path is not None:
            return self.outputs[item_path]
        if name in self.skipped:
            raise VitdslError(f"'from' names '{name}', which its 'when' switches off here",
                              location=self.bp.source.find(where), path=path)
        raise self.unknown(f"'from' names '{name}'", name, "a layer can only read earlier ones",
                           self.bp.source.find(where), path, self.all_names | {INPUT})

    def earlier(self, name: str) -> str | None:
        """The item path a name refers to: a full path, or the most recent earlier item with that name."""
        if "." in name and name in self.outputs:
            return name
        return next((p for p in reversed(self.outputs) if p.rsplit(".", 1)[-1] == name), None)

    def unknown(self, what: str, name: str, rule: str, loc, path: str, names: set = frozenset()) -> VitdslError:
        """The error for a name that is no earlier layer: a later one, or none at all."""
        if name in self.all_names:
            return VitdslError(f"{what}, which comes later: {rule}", location=loc, path=path)
        return VitdslError(f"{what}, which is no layer of this blueprint", location=loc, path=path,
                           hint=suggest(name, {p.rsplit(".", 1)[-1] for p in self.outputs} | names, "names"))

    def inputs(self, item: dict, kind: str, scope: dict, here: tuple, path: str, prev: str) -> list[str]:
        names = self.key(item, kind, "from", scope, here, path)
        if names is None:
            return [prev]
        return [self.resolve(n, here + ("from",), path) for n in ([names] if isinstance(names, str) else names)]

    def items(self, items: list, where: tuple, scope: dict, prefix: str, prev: str, repeats: tuple) -> str:
        segs = segments(items, where, self.bp)
        for i, (item, seg) in enumerate(zip(items, segs)):
            here = where + (i,)
            path = prefix + seg
            kind = classify(item, here, self.bp)
            if not self.key(item, kind, "when", scope, here, path):
                self.skipped.add(seg)
                continue
            if kind == "repeat":
                count = self.key(item, kind, "repeat", scope, here, path)
                prev = self.inputs(item, kind, scope, here, path, prev)[0]
                first = len(self.nodes)
                marks = []
                for k in range(count):
                    marks.append(len(self.nodes))
                    prev = self.items(item["layers"], here + ("layers",), {**scope, "index": k},
                                      f"{path}.{k}.", prev, repeats + ((path, k),))
                self.layer_drop(item, scope, here, path, first, marks)
            elif kind == "stages":
                prev = self.inputs(item, kind, scope, here, path, prev)[0]
                table = self.key(item, kind, "stages", scope, here, path)
                for s in range(len(next(iter(table.values())))):
                    prev = self.items(item["layers"], here + ("layers",),
                                      {**scope, **{k: v[s] for k, v in table.items()}, "stage": s},
                                      f"{path}.{s}.", prev, repeats)
            elif kind == "parallel":
                prev = self.parallel(item, scope, here, path, prev, repeats)
            else:
                prev = self.block(item, kind, here, scope, path, prev, repeats)
            self.outputs[path] = prev
        return prev

    def layer_drop(self, item: dict, scope: dict, here: tuple, path: str, first: int, marks: list[int]) -> None:
        p = self.key(item, "repeat", "layer_dropout", scope, here, path)
        if p > 0 and marks:
            bounds = marks + [len(self.nodes)]
            iterations = [[n.path for n in self.nodes[a:b]] for a, b in zip(bounds, bounds[1:])]
            self.layer_drops.append(LayerDrop(path, float(p), iterations,
                                              self.bp.source.find(here + ("layer_dropout",))))

    def parallel(self, item: dict, scope: dict, here: tuple, path: str, prev: str, repeats: tuple) -> str:
        from ..blocks.heads import Merge

        branches = self.key(item, "parallel", "parallel", scope, here, path)
        names = branches if isinstance(branches, list) else list(range(branches))
        residual = self.key(item, "parallel", "residual", scope, here, path)
        mode = self.key(item, "parallel", "merge", scope, here, path)
        sources = self.inputs(item, "parallel", scope, here, path, prev)
        at = self.bp.source.find(here + ("from",))
        if len(sources) not in (1, len(names)):
            raise VitdslError(f"'from' on a parallel item takes one name or one per branch ({len(names)}), got "
                              f"{len(sources)}", location=at, path=path)
        if residual and (mode == "none" or len(set(sources)) > 1):
            raise VitdslError("residual adds the one input to the merge", location=at, path=path,
                              hint="residual needs a merge (not none) and one input for every branch")
        sources = sources * len(names) if len(sources) == 1 else sources
        ends = [self.items(item["layers"], here + ("layers",), {**scope, "branch": b}, f"{path}.{name}.", source,
                           repeats) for b, (name, source) in enumerate(zip(names, sources))]
        if isinstance(branches, list):  # recorded after all of them: a branch reads the others' inputs
            self.outputs.update({f"{path}.{name}": end for name, end in zip(names, ends)})
        joined = sources[:1] * residual + ends
        if len(joined) == 1 or mode == "none":
            return ends[-1]
        node = Node(f"{path}.merge", Merge(mode=mode), joined, self.bp.source.find(here + ("parallel",)), repeats)
        self.nodes.append(node)
        return node.path

    def block(self, item, kind, here, scope, path, prev, repeats) -> str:
        from ..blocks.base import lookup
        from ..blocks.compat import overlaid

        cls = lookup(kind)
        raw = item[kind]
        fields = self.value(raw, scope, here + (kind,))
        if fields is None:
            fields = {}
        elif not isinstance(fields, dict):
            if cls.shorthand is None:
                raise VitdslError(f"'{kind}' takes a mapping of fields, not {fields!r}",
                                  location=self.bp.source.find(here + (kind,)), path=path)
            fields = {cls.shorthand: fields}
        location = self.bp.source.find(here + (kind,))
        try:
            spec = cls.model_validate(overlaid(self.bp.compat, kind, fields, self.bp.reference))
        except ValidationError as e:
            raise spec_error(e, cls, self.bp, here + (kind,), path, raw_is_mapping=isinstance(raw, dict)) from None
        node = Node(path, spec, self.inputs(item, kind, scope, here, path, prev), location, repeats,
                    self.share(item, scope, here, path, repeats))
        self.nodes.append(node)
        if len(self.nodes) > limits.BLOCKS:
            raise VitdslError(f"the blueprint expands to more than {limits.BLOCKS:,} blocks", location=location,
                              path=path, hint="repeats multiply: check the repeat counts around this block")
        return path

    def share(self, item: dict, scope: dict, here: tuple, path: str, repeats: tuple) -> Share | None:
        """Whose weights a block uses (``share:``), or None; iteration 0 of a self-shared block owns them."""
        if "share" not in item:
            return None
        loc = self.bp.source.find(here + ("share",))
        name, parts = share_target(self.key(item, "block", "share", scope, here, path))
        if name == path.rsplit(".", 1)[-1]:  # itself: iteration 0 of the innermost repeat owns the weights
            if not repeats:
                raise VitdslError(f"share names the block itself ('{name}'), which means 'every iteration uses "
                                  "iteration 0's weights' and needs an enclosing repeat", location=loc, path=path,
                                  hint="name an earlier block, or put this one in a repeat")
            rp, k = repeats[-1]
            if k == 0:
                return None
            owner = f"{rp}.0." + path[len(f"{rp}.{k}."):]
            if self.outputs.get(owner) != owner:
                raise VitdslError(f"share: iteration 0 of '{rp}' has no block '{owner}' to take the weights from",
                                  location=loc, path=path, hint="its 'when' may switch it off in iteration 0")
            return Share(owner, parts, loc)
        if name == INPUT:
            raise VitdslError("share names the input, which has no weights", location=loc, path=path)
        item_path = self.earlier(name)
        if item_path is None:
            raise self.unknown(f"share names '{name}'", name, "a block can only use an earlier one's weights",
                               loc, path)
        if self.outputs[item_path] != item_path:
            raise VitdslError(f"share names '{name}', which is a repeat, stages or parallel item: name one "
                              "block", location=loc, path=path,
                              hint="to share a whole stack, give each block of it a share")
        return Share(item_path, parts, loc)


def spec_error(e: ValidationError, cls, bp: BlueprintBase, where: tuple, path: str,
               raw_is_mapping: bool = True) -> VitdslError:
    given = {err["loc"][0]: err.get("input") for err in e.errors() if len(err["loc"]) == 1}
    old = moved(cls.block, given) if raw_is_mapping else None
    if old is not None:  # an option that left this block: name its new spelling
        field, message, hint = old
        return VitdslError(message, location=bp.source.find_key(where + (field,)), path=path, hint=hint)
    wording = Wording(unknown=f"unknown field '{{key}}' for block '{cls.block}'", keys="fields",
                      missing=f"block '{cls.block}' needs field '{{field}}'", whole=f"{cls.block}: {{msg}}",
                      invalid=f"field '{{field}}' of '{cls.block}': {{msg}} (got {{input!r}})")
    return convert(e, cls, wording, bp.source, where, path, at_value=not raw_is_mapping)


def expand(bp: BlueprintBase) -> Design:
    """The blueprint's layers expanded, with its parameters as they are (see ``Blueprint.resolve``)."""
    try:
        # $compat: the overlay, for what no block default can say (a table row vit-pytorch never reads)
        params = resolve_params(bp.params, {"compat": bp.compat or "none"})
    except VitdslError as e:
        where = ("params", getattr(e, "param", None)) + getattr(e, "subpath", ())
        raise e.at(bp.source.find(tuple(p for p in where if p is not None))) from None
    (kind, dims_raw), = bp.input.items()
    ex = _Expander(bp)
    scope = {"compat": bp.compat or "none", **params}
    dims = ex.value(dims_raw, scope, ("input", kind))
    if not all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in dims):
        raise VitdslError(f"input sizes must be positive whole numbers, got {dims}",
                          location=bp.source.find(("input", kind)))
    from ..blocks.shape import RANK

    if len(dims) != RANK[kind]:
        raise VitdslError(f"a {kind} input has {RANK[kind]} sizes, got {len(dims)}",
                          location=bp.source.find(("input", kind)))
    ex.all_names = set(item_names(bp.layers, branches=True))
    last = ex.items(bp.layers, ("layers",), scope, "", INPUT, ())
    if not ex.nodes:
        raise VitdslError("the blueprint has no blocks: every repeat around them is 0",
                          location=bp.source.find(("layers",)))
    outputs = [last]
    if bp.output is not None:
        names = [bp.output] if isinstance(bp.output, str) else bp.output
        outputs = []
        for i, name in enumerate(names):
            where = ("output",) if isinstance(bp.output, str) else ("output", i)
            target = ex.outputs.get(name)
            if target is None and name in ex.skipped:
                continue  # switched off by its `when`: this form of the network does not return it
            if target == INPUT:
                raise VitdslError(f"output names '{name}', which has no blocks (repeat 0)",
                                  location=bp.source.find(where))
            if target is None:
                raise VitdslError(f"output names '{name}', which is no layer of this blueprint",
                                  location=bp.source.find(where), hint=suggest(name, ex.outputs, "layers"))
            if target in outputs:
                raise VitdslError(f"output names '{name}' twice", location=bp.source.find(where))
            outputs.append(target)
        if not outputs:
            raise VitdslError("output needs at least one layer name", location=bp.source.find(("output",)))
    return Design(bp, params, kind, tuple(dims), ex.nodes, outputs, ex.layer_drops)
