"""Where a checked graph's classifier parts are, found from its structure (no torch): what timm's model API
(``vitdsl.graph.timm_api``) needs to split a network into features and head, and its trunk into stages.

The rules, the same for every blueprint:

- **features**: the output of the last layer (in execution order) whose output is not a vector; the **head**
  is every layer after it (pools, heads, a merge of several heads), which must read nothing but the
  features and each other. A head block there is a classifier; a pool, the global pool.
- **stages**: a *stage* is one iteration of a top-level ``repeat`` or ``stages`` item (the layers whose path
  shares its first numeric part: ``blocks.3``, ``stages.1``), in order, up to the features; its output is
  that of its last layer. A plain ViT thus has one stage per block (as timm's), a staged model one per
  resolution. The trunk ends where special tokens are added after it began: what follows reads them as a
  head does (CaiT's and XCiT's class attention: timm's ``forward_features`` runs it, but lists no features
  there), so those iterations are no stages.
- **final norm**: a ``norm`` layer between the last stage and the features (``forward_intermediates(norm=True)``
  applies it to each intermediate of the shape it takes, as timm's ViT and Swin do).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from ..errors import VitdslError
from .build import Graph


@dataclass(frozen=True)
class Stage:
    module: str  # the iteration's module path (timm's feature_info ``module``)
    path: str  # the layer whose output is the stage's
    channels: int
    reduction: int  # input size over the stage's spatial size


@dataclass(frozen=True)
class Layout:
    features: str  # the layer whose output forward_features returns
    head: tuple[str, ...]  # the layers after it, in execution order (the last is the output)
    classifiers: tuple[str, ...]  # head blocks in the head
    pools: tuple[str, ...]
    num_features: int  # width of what the classifier reads (the pooled features)
    num_classes: int  # 0: no classifier (the head is a pool only)
    stages: tuple[Stage, ...]
    final_norm: str | None


def no_answer(graph: Graph, why: str) -> VitdslError:
    return VitdslError(f"blueprint '{graph.design.blueprint.name}' {why}, so timm's model API has no answer for it",
                       hint="forward(x) and run(x, first, last) work on every network")


def layout(graph: Graph) -> Layout:
    """The classifier layout of ``graph``; a VitdslError saying why where the blueprint has none."""
    if graph.input.kind in ("volume",) or graph.input.groups > 1:
        raise no_answer(graph, f"takes a video ({graph.input}): timm's API is for image models")
    if len(graph.output_paths) != 1:
        raise no_answer(graph, f"has {len(graph.output_paths)} outputs ({', '.join(graph.output_paths)}): "
                               "the API splits one classifier output")
    out = graph.output_paths[0]
    if graph.shape(out).kind != "vector":
        raise no_answer(graph, f"returns {graph.shape(out).kind} ({graph.shape(out)}), not a vector: it has no "
                               "head to split off")
    order = graph.order
    cut = max((i for i, p in enumerate(order) if graph.shape(p).kind != "vector"), default=-1)
    if cut < 0:
        raise no_answer(graph, "has no layer before its head")
    features, head = order[cut], tuple(order[cut + 1:])
    nodes = {p: graph.nx.nodes[p]["node"] for p in order}
    strays = [p for p in head for i in nodes[p].inputs if i != features and i not in head]
    if head[-1] != out or strays:
        raise no_answer(graph, f"has a head that reads more than the features ({features})")
    classifiers = tuple(p for p in head if nodes[p].spec.block == "head")
    pools = tuple(p for p in head if nodes[p].spec.block == "pool")
    if classifiers:
        width = graph.nx.nodes[classifiers[0]]["inputs"][0].features
        classes = {nodes[p].spec.classes for p in classifiers}
        if len(classes) != 1:
            raise no_answer(graph, f"has classifiers of {len(classes)} sizes ({', '.join(classifiers)})")
        num_classes = classes.pop()
    else:
        width, num_classes = graph.shape(out).features, 0
    stages = _stages(graph, order[:cut + 1], nodes)
    last = order.index(stages[-1].path) if stages else -1
    norm = next((p for p in order[last + 1:cut + 1] if nodes[p].spec.block == "norm"), None)
    return Layout(features, head, classifiers, pools, width, num_classes, tuple(stages), norm)


def _stages(graph: Graph, trunk: list[str], nodes: dict) -> list[Stage]:
    groups: dict[str, str] = {}  # iteration module → its last layer
    for p in trunk:
        parts = p.split(".")
        k = next((i for i, part in enumerate(parts) if part.isdigit()), None)
        if k is not None:
            groups[".".join(parts[:k + 1])] = p
        elif groups and nodes[p].spec.block == "tokens" and graph.shape(p).prefix > _prefix(graph, nodes[p]):
            break  # special tokens added after the trunk: a class-attention head follows
    return [Stage(module, p, graph.shape(p).features, reduction(graph, p)) for module, p in groups.items()]


def _prefix(graph: Graph, node) -> int:
    return graph.shape(node.inputs[0]).prefix if node.inputs and node.inputs[0] in graph.nx else 0


def reduction(graph: Graph, path: str) -> int:
    shape, size = graph.shape(path), graph.input.dims[1:]
    if shape.kind in ("image", "images"):
        return size[0] // shape.dims[1]
    if shape.grid:
        return size[0] // shape.grid[0]
    patches = shape.dims[0] - shape.prefix - shape.suffix
    return max(1, round(math.sqrt(math.prod(size) / max(patches, 1))))


def grid(graph: Graph, path: str) -> tuple[int, int] | None:
    """The (rows, columns) of a token layer's patch tokens, or None when they have no grid."""
    shape = graph.shape(path)
    return tuple(shape.grid) if shape.kind == "tokens" and shape.grid and len(shape.grid) == 2 else None
