"""What checking, compiling and tracing a plain blueprint (an architecture) means. The blueprint package
sits below the graph and trace packages, so the operations are installed on ``Blueprint`` from here, the
package API layer, when ``vitdsl`` is imported (``vitdsl.objectives`` does the same for its kind)."""
from __future__ import annotations

from typing import Any

from .blueprint.model import Blueprint
from .errors import VitdslError


class PlainOperations:
    """See ``vitdsl.blueprint.kinds.Operations``; torch is imported only by compile and trace."""

    def check(self, bp: Blueprint):
        from .graph.build import build_graph
        from .graph.costs import check_budget

        graph = build_graph(bp.resolve())
        check_budget(graph)
        return graph

    def compile(self, checked, device: Any, check_memory: bool, **kwargs: Any):
        from .graph.budget import check_fits
        from .graph.network import compile_graph

        if check_memory:
            check_fits([checked], device)
        if kwargs:
            raise VitdslError(f"build got {', '.join(sorted(kwargs))}, which only objective blueprints take")
        network = compile_graph(checked, device=device)
        network.name_source = timm_names  # pretrained_cfg's timm names, looked up on first use
        return network

    def trace(self, bp: Blueprint, batch: int):
        from .trace import trace

        return trace(bp, batch=batch)

    def report(self, bp: Blueprint, graph) -> list[str]:
        from .graph.build import info, valid_input_sizes

        totals = info(graph)
        sizes = valid_input_sizes(graph.nx, graph.order, graph.input)
        return [f"{totals['blocks']} blocks, {graph.input} → {graph.output}",
                f"  params: {totals['params']:,} (from the shape rules)",
                f"  FLOPs:  {totals['flops']:,} per image", *([f"  {sizes}"] if sizes else [])]


def timm_names(bp: Blueprint) -> list[str]:
    """The timm models whose target is ``bp`` (its blueprint, variant and overrides; the class count aside)."""
    from .blueprint.load import load
    from .interop import timm as vt

    def size(params: dict) -> dict:
        return {k: v for k, v in params.items() if k != "classes"}

    mine, out = size(bp.params), []
    for name in vt.names():
        t = vt.target(name)
        if t.blueprint == bp.name and size(load(t.blueprint, t.variant, t.overrides).params) == mine:
            out.append(name)
    return sorted(out, key=lambda n: not n.startswith(bp.name + "_"))  # the blueprint's own family first


Blueprint.operations = PlainOperations()
