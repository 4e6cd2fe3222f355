"""Design → ``networkx.DiGraph``: one node per block, edges carry tensors of a declared kind.

Everything that can be wrong with the wiring is caught here, before any weight exists: unknown
``from:`` names (in expansion), cycles, blocks with too few or too many inputs, outputs nobody uses,
kind mismatches and every block's shape rule. No torch is imported.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import networkx as nx

from ..blocks.shape import Shape
from ..blueprint.expand import INPUT, Design
from ..errors import ShapeError, VitdslError
from .rules import MAX_NUMEL, carry_groups, check_arity, check_kinds


@dataclass
class Graph:
    """The checked graph of a design: ``nx`` holds per node ``node`` (the expanded Node), ``inputs``
    (input shapes) and ``output`` (output shape); ``order`` is the execution order."""

    design: Design
    nx: nx.DiGraph
    order: list[str]
    input: Shape
    output_paths: list[str]

    @property
    def output(self) -> Shape:
        """The shape of the (first) output."""
        return self.nx.nodes[self.output_paths[0]]["output"]

    @property
    def outputs(self) -> list[Shape]:
        return [self.nx.nodes[p]["output"] for p in self.output_paths]

    def shape(self, path: str) -> Shape:
        return self.nx.nodes[path]["output"]

    def __iter__(self):
        for path in self.order:
            data = self.nx.nodes[path]
            yield data["node"], data["inputs"], data["output"]


def _wire(design: Design) -> tuple[nx.DiGraph, list[str]]:
    g = nx.DiGraph()
    g.add_node(INPUT)
    rank = {INPUT: -1}
    for i, node in enumerate(design.nodes):
        g.add_node(node.path, node=node)
        rank[node.path] = i
    for node in design.nodes:
        for src in node.inputs:
            g.add_edge(src, node.path)
    try:
        cycle = nx.find_cycle(g)
    except nx.NetworkXNoCycle:
        cycle = None
    if cycle:
        names = [u for u, _ in cycle] + [cycle[0][0]]
        last = g.nodes[cycle[-1][1]]["node"]
        raise VitdslError("the layers form a cycle: " + " -> ".join(names), location=last.location, path=last.path,
                          hint="a 'from:' must name a layer that comes earlier in the data flow")
    order = [p for p in nx.lexicographical_topological_sort(g, key=rank.__getitem__) if p != INPUT]
    return g, order


def build_graph(design: Design) -> Graph:
    g, order = _wire(design)
    src = Shape(design.input_kind, design.input_dims)
    if src.numel >= MAX_NUMEL:
        raise ShapeError(f"the input ({src}) holds {src.numel:,} numbers per sample, 2**48 or more",
                         location=design.blueprint.source.find(("input", design.input_kind)),
                         hint="no tensor may hold that many numbers")
    _propagate(g, order, src)
    _check_padding(g, order)
    outputs = set(design.outputs)
    for node in design.nodes:
        if node.path in outputs and g.nodes[node.path]["output"].groups > 1:
            raise ShapeError(f"the network's output holds {g.nodes[node.path]['output'].groups} groups per sample "
                             "(folded into the batch)", location=node.location, path=node.path,
                             hint="join them first: '- ungroup' makes one sequence of them")
        if node.spec.terminal and g.out_degree(node.path):
            reader = next(iter(g.successors(node.path)))
            raise VitdslError(f"'{reader}' reads the output of '{node.spec.block}', which gives integers for the "
                              "network's output, not features", location=node.location, path=node.path,
                              hint=f"name it in 'output:', and feed '{reader}' from the layer before it")
        if node.path not in outputs and g.out_degree(node.path) == 0:
            raise VitdslError(f"the output of '{node.path}' is never used", location=node.location, path=node.path,
                              hint="feed it to a later layer with 'from:', or remove it")
        if node.share is not None:
            shared_params(g, node)
    return Graph(design, g, order, src, list(design.outputs))


def _check_padding(g: nx.DiGraph, order: list[str]) -> None:
    """Token sampling pads the images of a batch that keep fewer tokens; every block its tokens reach must
    leave the padding rows out (``BlockSpec.on_padding``), or an image's result would depend on its batch."""
    padded: dict[str, str] = {}  # node -> the sampling block whose padding its output carries
    for path in order:
        node = g.nodes[path]["node"]
        source = next((padded[p] for p in node.inputs if p in padded), None)
        rule = node.spec.takes_padding()
        if source is not None and rule is None:
            raise ShapeError(f"'{node.spec.block}' would take the padding rows that token sampling in '{source}' "
                             "leaves for tokens", location=node.location, path=path,
                             hint="after token sampling use mlp, norm, head, global-attn over tokens, memory-attn, "
                                  "sampling-attn, pos-embed (learned, scalar, sincos1d), pool, token-merge or "
                                  "token-ids")
        if source is not None and rule == "keep":
            padded[path] = source
        elif node.spec.data_dependent():
            padded[path] = path


def shared_params(g: nx.DiGraph, node) -> int:
    """How many of a sharing block's parameters are another block's (checked: the same block with the
    same fields for a whole share, and as many parameters on both sides)."""
    share = node.share
    owner = g.nodes[share.owner]["node"]
    mine, theirs = g.nodes[node.path]["inputs"], g.nodes[share.owner]["inputs"]
    where = dict(location=share.location, path=node.path)
    if share.parts is None:
        if owner.spec.block != node.spec.block:
            raise VitdslError(f"share: this {node.spec.block} cannot use the weights of '{share.owner}', a "
                              f"{owner.spec.block}", **where, hint="a whole share joins two blocks of one kind; "
                              "share single tensors with share: {with: NAME, params: [...]}")
        a, b = node.spec.model_dump(), owner.spec.model_dump()
        diff = [f"{k} {a[k]!r} here, {b[k]!r} there" for k in a if a[k] != b[k]]
        if diff:
            raise VitdslError(f"share: the fields differ from those of '{share.owner}', whose weights this block "
                              f"uses: {'; '.join(diff)}", **where,
                              hint="give both the same fields, or share only some tensors with "
                                   "share: {with: NAME, params: [...]}")
        n, m = node.spec.count_params(*mine), owner.spec.count_params(*theirs)
        if n != m:
            raise VitdslError(f"share: '{share.owner}' holds {m:,} parameters for its input "
                              f"({', '.join(map(str, theirs))}), but this block needs {n:,} for its own "
                              f"({', '.join(map(str, mine))})", **where,
                              hint="shared weights must fit both inputs: share blocks whose weights do not depend "
                                   "on the input size, or only the tensors that fit")
        return n
    total = 0
    for part in share.parts:
        try:
            n = _part_params(node.spec, part, mine)
            m = _part_params(owner.spec, part, theirs)
        except VitdslError as e:
            raise e.at(share.location, node.path) from None
        if n != m:
            raise VitdslError(f"share: part '{part}' holds {m:,} parameters in '{share.owner}' but {n:,} here",
                              **where, hint="shared tensors must have one shape on both sides")
        total += n
    return total


def _part_params(spec, part: str, inputs: list[Shape]) -> int:
    """Parameters in one part of a block's module: from its spec when it says, else by building it on meta."""
    n = spec.part_params(part, *inputs)
    if n is not None:
        return n
    import torch

    with torch.device("meta"):
        module = spec.build(*inputs)
    found = [p for name, p in module.named_parameters() if name == part or name.startswith(part + ".")]
    if not found and part not in dict(module.named_modules()) and part not in dict(module.named_buffers()):
        parts = sorted({name.split(".")[0] for name, _ in [*module.named_parameters(), *module.named_buffers()]})
        raise VitdslError(f"share: '{part}' is no parameter, buffer or submodule of a {spec.block}",
                          hint=f"its parts: {', '.join(parts) or 'none'}")
    return sum(p.numel() for p in found)


def _propagate(g: nx.DiGraph, order: list[str], src: Shape, *, explain: bool = True) -> None:
    shapes = _shapes(g, order, src, explain=explain)
    g.nodes[INPUT]["output"] = src
    for path in order:
        g.nodes[path]["inputs"], g.nodes[path]["output"] = shapes[path]


def _shapes(g: nx.DiGraph, order: list[str], src: Shape, *, explain: bool = True) -> dict:
    """(input shapes, output shape) per node for input ``src``; raises on the first block that
    cannot take what reaches it."""
    out_of = {INPUT: src}
    result = {}
    for path in order:
        node = g.nodes[path]["node"]
        spec = node.spec
        inputs = [out_of[p] for p in node.inputs]
        check_arity(node)  # before the shape rules, which take exactly their arity
        check_kinds(g, node, inputs)
        try:
            out = carry_groups(spec, inputs)
        except ShapeError as e:
            hint = e.hint
            if explain:
                sizes = valid_input_sizes(g, order, src)
                if sizes is not None:
                    hint = (hint + "; " if hint else "") + sizes
            raise ShapeError(f"{e.message} (input here: {inputs[0]})", location=node.location, path=path,
                             hint=hint) from None
        out_of[path] = out
        result[path] = (inputs, out)
    return result


def valid_input_sizes(g: nx.DiGraph, order: list[str], src: Shape, limit: int = 1024) -> str | None:
    """'square input sizes that work (up to LIMIT): ...' (see ``vitdsl.graph.sizes``)."""
    from .sizes import valid_input_sizes as search

    return search(g, order, src, limit)


def info(graph: Graph) -> dict[str, Any]:
    """Totals from the shape rules alone (no torch): parameters and FLOPs for a batch of one."""
    params = flops = 0
    for node, inputs, _ in graph:
        params += node.spec.count_params(*inputs)
        flops += node.spec.total_flops(*inputs)
        if node.share is not None:  # weights of another block, counted there
            params -= shared_params(graph.nx, node)
    return {"params": params, "flops": flops, "blocks": len(graph.order)}
