"""Which encoder layers an objective runs: found in the checked encoder graph (no torch).

Objectives do not run the encoder whole. MAE embeds the patches, adds their positions, drops most of
them and runs the transformer body on the rest; DINO takes the output of one layer. The encoder's
layers play *roles* — patchify, positions, body, embedding — found by what their blocks declare they
are (``BlockSpec.capabilities``: a block of your own fills a role as a built-in one does), or named by the
objective (``body: [blocks, norm]``), and a segment that runs on other tokens than the encoder's
own (fewer, or without the class token) is checked again for those tokens before any weight exists.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import networkx as nx

from ..blocks.base import CAPABILITIES
from ..blocks.shape import Shape
from ..errors import Location, ShapeError, VitdslError, suggest
from ..graph.build import Graph


@dataclass
class Roles:
    """Encoder layer paths by role. ``keep`` holds every layer the objective runs: the compiled encoder
    holds only these (so every parameter it has gets a gradient), under the encoder's own paths."""

    patchify: str | None = None
    positions: str | None = None
    prefix: int = 0  # special tokens ahead of the patch tokens where the positions are added
    body: tuple[str, str] | None = None  # first and last layer
    embedding: str | None = None
    keep: set[str] = field(default_factory=set)

    def described(self) -> list[tuple[str, str]]:
        out = []
        if self.patchify:
            out.append(("patchify", self.patchify))
        if self.positions:
            out.append(("positions", self.positions))
        if self.body:
            out.append(("body", f"{self.body[0]} … {self.body[1]}"))
        if self.embedding:
            out.append(("embedding", self.embedding))
        return out


class Finder:
    """Looks layers up in an encoder graph for one objective, with errors that point at the objective."""

    def __init__(self, graph: Graph, objective: str, location: Location | None):
        self.graph, self.objective, self.location = graph, objective, location
        self.order = graph.order

    def node(self, path: str):
        return self.graph.nx.nodes[path]["node"]

    def block(self, path: str) -> str:
        """The layer's block name, for messages (roles go by ``has``)."""
        return self.node(path).spec.block

    def has(self, path: str, capability: str) -> bool:
        """Whether the layer's block declares ``capability`` (see ``blocks.base.CAPABILITIES``)."""
        assert capability in CAPABILITIES, capability  # a misspelt word would silently match nothing
        return capability in self.node(path).spec.capabilities

    def error(self, message: str, hint: str | None = None, location: Location | None = None) -> VitdslError:
        return VitdslError(f"{self.objective}: {message}", location=location or self.location, hint=hint)

    def layer(self, name: str, last: bool = False, location: Location | None = None) -> str:
        """A layer path from a path or the name of a repeat or stages item (its first or last layer)."""
        if name in self.graph.nx.nodes and name != "input":
            return name
        inside = [p for p in self.order if p.startswith(name + ".")]
        if inside:
            return inside[-1] if last else inside[0]
        names = {p.split(".")[0] for p in self.order} | set(self.order)
        raise self.error(f"the encoder '{self.graph.design.blueprint.name}' has no layer '{name}'",
                         suggest(name, names, "its layers"), location)

    def first(self, capability: str, after: str | None = None) -> str | None:
        """The first layer (after ``after``) whose block has ``capability``."""
        start = self.order.index(after) + 1 if after else 0
        return next((p for p in self.order[start:] if self.has(p, capability)), None)

    def readout(self) -> str | None:
        """The first layer that reads the tokens out (pool, attention pool or head)."""
        return self.first("readout")

    def default_body(self, after: str) -> tuple[str, str]:
        """From the layer after ``after`` to the last one before the readout."""
        i = self.order.index(after) + 1
        end = self.readout()
        j = self.order.index(end) if end else len(self.order)
        if j <= i:
            raise self.error(f"the encoder has no layers between '{after}' and its readout to train",
                             "name them with body: [first, last]")
        return self.order[i], self.order[j - 1]

    def span(self, first: str, last: str) -> list[str]:
        i, j = self.order.index(first), self.order.index(last)
        if j < i:
            raise self.error(f"the body starts at '{first}', which comes after its last layer '{last}'")
        return self.order[i:j + 1]

    def ancestors(self, path: str) -> set[str]:
        return (nx.ancestors(self.graph.nx, path) - {"input"}) | {path}

    def chain(self, paths: list[str]) -> None:
        """Raise unless the layers take one tensor from outside (the segment's input)."""
        inside = set(paths)
        outside = {i for p in paths for i in self.node(p).inputs if i not in inside}
        if len(outside) != 1:
            raise self.error(f"the layers {paths[0]} … {paths[-1]} read {len(outside)} tensors from outside "
                             f"({', '.join(sorted(outside))}); the objective feeds them one",
                             "choose a body that runs as one chain")

    def check(self, paths: list[str], shape: Shape, why: str) -> Shape:
        """Infer the layers' shapes again for ``shape`` (what the objective feeds them); the output shape."""
        self.chain(paths)
        x = shape
        for p in paths:
            try:
                x = self.node(p).spec.infer(x)
            except ShapeError as e:
                node = self.node(p)
                raise VitdslError(f"{self.objective}: {why}, which '{p}' ({node.spec.block}) cannot take: {e.message}",
                                  location=self.location, path=p,
                                  hint=e.hint or "choose an encoder whose body mixes tokens globally") from None
        return x

    def positions_kind(self, path: str) -> str | None:
        """Refuse positions the objective cannot add to patch tokens itself: it reads the module's table
        ``pos`` (the "positions" capability), which pos-embed holds as one (rows, width) table only for
        its kinds learned, sincos2d and none. A block without kinds is taken at its word."""
        spec = self.node(path).spec
        if "kind" not in type(spec).model_fields:
            return None
        kind = spec.kind
        if kind not in ("learned", "sincos2d", "none") or getattr(spec, "per_group", False):
            raise self.error(f"the positions at '{path}' are '{kind}'; the objective adds them to patch tokens "
                             "itself and knows learned, sincos2d and none")
        return kind
