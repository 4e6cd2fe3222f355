"""The square input sizes a design takes: ``vitdsl validate``'s last line, and the hint of a shape error.

Trying every size from 8 to 1024 through every block is what decides, and ``vitdsl validate`` should stay
well under a second, so the search runs in two passes that give exactly that answer:

1. the shape rules alone (``infer``, kinds, groups): most sizes fail one, mostly early, and are out;
2. the sizes that pass (rarely more than a few dozen) go block by block through everything the graph
   builder checks, the limits on what a tensor can hold included (``carry_groups``).

A size passes 2 only if it passes every check, and a size that fails 1 fails a check the builder makes too,
at that block or before it, so both passes together refuse exactly the sizes one full pass refuses. A block
whose rules raise something other than a ``VitdslError`` (a bug in it) leaves its size to pass 2, which
runs the rules the builder runs, and so raises where the builder would. Both passes remember each block's
answer for the inputs it saw: after a stride the sizes meet, so most are looked up.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from ..blocks.shape import CHANNELS_FIRST, Shape
from ..blueprint.expand import INPUT
from ..errors import VitdslError
from .rules import carry_groups, check_arity, check_kinds, grouped, within_limits

if TYPE_CHECKING:  # pragma: no cover
    import networkx as nx

SMALLEST = 8
_UNSURE = object()  # pass 1 could not decide (the rule raised something else): pass 2 will


def valid_input_sizes(g: "nx.DiGraph", order: list[str], src: Shape, limit: int = 1024) -> str | None:
    """'square input sizes that work (up to LIMIT): ...' for square images (or the frame size of volumes);
    None for inputs without a spatial size, or when no size works (then the input size is not the problem)."""
    if src.kind not in CHANNELS_FIRST:
        return None
    ok = input_sizes(g, order, src, limit)
    if not ok:
        return None
    return f"square input sizes that work (up to {limit}): {compact(ok)}"


def input_sizes(g: "nx.DiGraph", order: list[str], src: Shape, limit: int = 1024) -> list[int]:
    """The sizes s from 8 to ``limit`` for which an input of ``src``'s shape with an s×s image (or frame)
    passes every block's checks."""
    steps = [g.nodes[path]["node"] for path in order]
    for node in steps:  # a block's arity does not depend on the size: refused for one size, refused for all
        try:
            check_arity(node)
        except VitdslError:
            return []
    position = {INPUT: 0, **{node.path: i + 1 for i, node in enumerate(steps)}}
    sources = [[position[p] for p in node.inputs] for node in steps]
    rules = _alike(steps)
    # Shapes are numbered as they appear, and the answers kept by (block's rules, input numbers): a walk
    # then hashes small tuples of ints, not shapes
    shapes: list[Shape] = []
    number: dict[Shape, int] = {}
    by_shape: dict[tuple, object] = {}  # pass 1: the output's number, None (refused) or _UNSURE
    checked: dict[tuple, object] = {}  # pass 2: the same

    def numbered(shape: Shape) -> int:
        n = number.setdefault(shape, len(shapes))
        if n == len(shapes):
            shapes.append(shape)
        return n

    def walk(first: int, answer) -> object:
        """Block by block from the input numbered ``first``: the last output's number, or what stopped it."""
        ids = [first]
        for i, src in enumerate(sources):
            key = (rules[i], *[ids[j] for j in src])
            out = answer(i, key)
            if out is None or out is _UNSURE:
                return out
            ids.append(out)
        return ids[-1]

    def shape_rules(i, key):
        out = by_shape.get(key, by_shape)
        if out is by_shape:
            inputs = [shapes[j] for j in key[1:]]
            try:
                check_kinds(g, steps[i], inputs)
                out = numbered(grouped(steps[i].spec, inputs))
            except VitdslError:
                out = None
            except Exception:  # a block's bug: pass 2 runs the builder's checks, and raises as it would
                out = _UNSURE
            by_shape[key] = out
        return out

    def everything(i, key):
        out = checked.get(key, checked)
        if out is checked:
            out = by_shape.get(key, _UNSURE)  # None: the shape rules refuse these inputs
            inputs = [shapes[j] for j in key[1:]]
            try:
                if out is _UNSURE:  # what _shapes does
                    check_kinds(g, steps[i], inputs)
                    out = numbered(carry_groups(steps[i].spec, inputs))
                elif out is not None:  # the rest of carry_groups, on the output pass 1 found
                    within_limits(steps[i].spec, inputs, shapes[out])
            except VitdslError:
                out = None
            checked[key] = out
        return out

    inputs = {s: numbered(Shape(src.kind, (*src.dims[:-2], s, s))) for s in range(SMALLEST, limit + 1)}
    survivors = [s for s, n in inputs.items() if walk(n, shape_rules) is not None]
    return [s for s in survivors if walk(inputs[s], everything) is not None]


def _alike(steps) -> list[int]:
    """A number per block, the same for blocks whose specs are alike (same class, same field values, written
    the same way, the same fields given): their rules give the same answers, so one block's answer for some
    inputs serves the others (the blocks of a repeat, mostly). The values' reprs tell 1 from 1.0 and True."""
    seen: dict[tuple, int] = {}
    out = []
    for node in steps:
        spec = node.spec
        key = (type(spec), repr(spec.__dict__), repr(sorted(spec.model_fields_set)),
               repr(spec.__pydantic_private__), repr(spec.__pydantic_extra__))
        out.append(seen.setdefault(key, len(seen)))
    return out


def compact(sizes: list[int], show: int = 6) -> str:
    """'multiples of 16 from 16 to 1024', or runs such as '221–224, 445–448, ...'."""
    if len(sizes) > 2:
        step = sizes[1] - sizes[0]
        if step > 1 and all(b - a == step for a, b in zip(sizes, sizes[1:])) and sizes[0] % step == 0:
            return f"multiples of {step} from {sizes[0]} to {sizes[-1]}"
    runs: list[list[int]] = []
    for s in sizes:
        if runs and s == runs[-1][1] + 1:
            runs[-1][1] = s
        else:
            runs.append([s, s])
    parts = [str(a) if a == b else f"{a}–{b}" for a, b in runs]
    return ", ".join(parts[:show]) + (", ..." if len(parts) > show else "")
