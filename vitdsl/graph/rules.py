"""The checks each block meets in the graph, shared by the builder (``build.py``) and the size search
(``sizes.py``): its arity, the kinds it takes, its shape rule with groups carried through, and the sizes
no tensor can hold. No torch, no networkx: the caller passes the graph."""
from __future__ import annotations

from ..blocks.shape import Shape
from ..blueprint.expand import INPUT
from ..errors import ShapeError, VitdslError

# What to put between two blocks whose kinds do not match.
FIXES = {
    ("image", "tokens"): "cut the map into tokens first, e.g. '- patchify: {patch: 1, dim: ...}'",
    ("tokens", "vector"): "pool the tokens first, e.g. '- pool: cls' or '- pool: mean'",
    ("image", "vector"): "pool the map first, e.g. '- pool: mean'",
    ("vector", "tokens"): "this block needs a sequence: move it before the pool",
    ("vector", "image"): "this block needs a feature map: move it before the pool",
    ("tokens", "image"): "this block works on feature maps; it cannot follow a token sequence",
    ("volume", "image"): "this block works on 2-D maps; the input is a video volume",
    ("packed", "tokens"): "these tokens pack several images per sample: only token-wise blocks (mlp, norm), "
                          "global-attn (which attends within each image), pos-embed with kind: factorized "
                          "and attn-pool take them",
    ("images", "image"): "images of varying sizes must be packed first: '- patchify: {patch: ..., dim: ...}'",
    ("images", "tokens"): "images of varying sizes must be packed first: '- patchify: {patch: ..., dim: ...}'",
}


# Most numbers one tensor may hold per sample: torch sizes storage in bytes as int64, so a model the shape
# rules accept must stay far below 2**63 bytes for any batch, or validate would pass what build cannot make.
MAX_NUMEL = 2**48


def check_kinds(g, node, inputs: list[Shape]) -> None:
    spec = node.spec
    for p, shape in zip(node.inputs, inputs):
        if shape.kind not in spec.takes:
            giver = "the input" if p == INPUT else f"'{p}' ({g.nodes[p]['node'].spec.block})"
            want = " or ".join(spec.takes)
            raise ShapeError(f"'{spec.block}' takes {want}, but {giver} gives {shape}", location=node.location,
                             path=node.path, hint=FIXES.get((shape.kind, spec.takes[0])))


def check_arity(node) -> None:
    lo, hi = node.spec.arity
    n = len(node.inputs)
    if n < lo or (hi is not None and n > hi):
        want = f"{lo}" if lo == hi else f"at least {lo}" if hi is None else f"{lo} to {hi}"
        raise VitdslError(f"'{node.spec.block}' takes {want} input(s), got {n}", location=node.location,
                          path=node.path, hint="name its inputs with from: [a, b]" if lo > 1 else
                          "give 'from:' one name" if hi == 1 else None)


def carry_groups(spec, inputs: list[Shape]) -> Shape:
    """The block's output shape, holding its input's groups unless the block makes or undoes groups."""
    out = grouped(spec, inputs)
    within_limits(spec, inputs, out)
    return out


def grouped(spec, inputs: list[Shape]) -> Shape:
    """The block's shape rule, its output holding the input's groups (``carry_groups`` without the limits)."""
    groups = {x.groups for x in inputs}
    if len(groups) > 1:
        raise ShapeError(f"the inputs hold different numbers of groups ({', '.join(str(x.groups) for x in inputs)}); "
                         f"'{spec.block}' joins them item by item", hint="give every branch the same groups")
    out = spec.infer(*inputs)
    if spec.regroups or not inputs or out.groups == inputs[0].groups:  # a copy would be equal: spare it
        return out
    return out.with_groups(inputs[0].groups)


def within_limits(spec, inputs: list[Shape], out: Shape) -> None:
    """Refuse sizes no tensor can hold: the output, the weights, and (bounded by the FLOPs) what the block
    computes on the way, such as an attention matrix."""
    sizes = [("its output", out.numel * out.groups, "numbers"), ("its weights", spec.count_params(*inputs), "numbers"),
             ("its work", spec.total_flops(*inputs), "FLOPs")]
    for what, n, unit in sizes:
        if n >= MAX_NUMEL:
            raise ShapeError(f"too large: {what} would take {n:,} {unit} per sample, 2**48 or more",
                             hint="use smaller sizes")
