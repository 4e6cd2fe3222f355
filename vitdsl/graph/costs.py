"""Parameters and FLOPs per stage, from the shape rules alone (no torch): what ``budget:`` reports when a
design exceeds it, and what ``vitdsl diff`` compares between two designs.

A stage is a top-level layer of the blueprint; an indexed one (``stages.2``: one stage of a ``stages`` item) is
its own, and the iterations of a top-level ``repeat`` (``blocks.0`` … ``blocks.11``) fold into one (``blocks``,
×12)."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from ..blocks.shape import Shape
from ..errors import VitdslError
from .build import Graph, build_graph, shared_params


@dataclass
class Stage:
    name: str
    params: int = 0
    flops: int = 0
    times: int = 1  # iterations of a repeat folded into it
    blocks: int = 0
    output: Shape | None = None  # of its last node


def stage_of(path: str, repeats: tuple) -> tuple[str, bool]:
    """(the stage a node path belongs to, whether it is a folded repeat)."""
    parts = path.split(".")
    if repeats and repeats[0][0] == parts[0]:
        return parts[0], True
    return ".".join(parts[:2]) if len(parts) > 2 and parts[1].isdigit() else parts[0], False


def stage_costs(graph: Graph) -> list[Stage]:
    """The stages in execution order, each with its parameters (shared weights counted at their owner) and
    FLOPs for one input."""
    stages: dict[str, Stage] = {}
    iterations: dict[str, set] = {}
    for node, inputs, output in graph:
        name, folded = stage_of(node.path, node.repeats)
        stage = stages.setdefault(name, Stage(name))
        stage.params += node.spec.count_params(*inputs) - (shared_params(graph.nx, node) if node.share else 0)
        stage.flops += node.spec.total_flops(*inputs)
        stage.blocks += 1
        stage.output = output
        if folded:
            iterations.setdefault(name, set()).add(node.repeats[0][1])
    for name, seen in iterations.items():
        stages[name].times = len(seen)
    return list(stages.values())


def _breakdown(stages: list[Stage], attr: str, unit: float, fmt: str) -> str:
    """The stages' shares in execution order; those under 1% of the total are left out (and counted)."""
    total = sum(getattr(s, attr) for s in stages)
    shown = [s for s in stages if getattr(s, attr) * 100 >= total]
    text = " · ".join(f"{s.name}{f' ×{s.times}' if s.times > 1 else ''} {fmt.format(getattr(s, attr) / unit)}"
                      for s in shown)
    rest = len(stages) - len(shown)
    return text + (f" (+{rest} under 1%)" if rest else "")


def check_budget(graph: Graph) -> None:
    """Refuse a design over its blueprint's ``budget:``, naming the stages' shares."""
    bp = graph.design.blueprint
    budget = getattr(bp, "budget", None)
    if budget is None:
        return
    where = bp.source.find(("budget",))
    counted, at = graph, ""
    if budget.at is not None:
        counted, at = _at(graph, budget.at, where)
    stages = stage_costs(counted)
    params, flops = sum(s.params for s in stages), sum(s.flops for s in stages)
    if budget.params_max is not None and params > budget.params_max:
        raise VitdslError(f"{params:,} parameters exceed the budget's params_max {budget.params_max:,}",
                          location=bp.source.find(("budget", "params_max")) or where,
                          hint="per stage: " + _breakdown(stages, "params", 1e6, "{:.2f}M"))
    for key, limit, used in (("gflops_max", budget.gflops_max, flops / 1e9), ("gmacs_max", budget.gmacs_max,
                                                                              flops / 2e9)):
        if limit is not None and used > limit:
            unit = "GFLOPs" if key == "gflops_max" else "GMACs"
            raise VitdslError(f"{used:.3g} {unit}{at} exceed the budget's {key} {limit:g}",
                              location=bp.source.find(("budget", key)) or where,
                              hint=f"per stage ({unit}): " + _breakdown(stages, "flops", 1e9 if key == "gflops_max"
                                                                        else 2e9, "{:.3g}"))


def _at(graph: Graph, at: int | tuple[int, int], where) -> tuple[Graph, str]:
    design = graph.design
    h, w = (at, at) if isinstance(at, int) else at
    if design.input_kind not in ("image", "volume"):
        raise VitdslError(f"budget at: {h}×{w} resizes an image or volume input, not {design.input_kind}",
                          location=where)
    dims = (*design.input_dims[:-2], h, w)
    try:
        return build_graph(dataclasses.replace(design, input_dims=dims)), f" at {h}×{w}"
    except VitdslError as e:
        raise VitdslError(f"budget at {h}×{w}: {e.message}", location=e.location or where, path=e.path,
                          hint=e.hint) from None
