"""The compiled objective: an ``nn.Module`` holding the encoder (only the layers the objective runs, under
the encoder's own paths, so its state_dict loads into the full encoder) and the parts, whose forward
returns the loss."""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..graph.network import Network, compile_graph
from .design import ObjectiveDesign


class Objective(nn.Module):
    """Base of every objective module: ``self.encoder`` and one attribute per part (a Network, or None when
    the part is switched off), plus the encoder roles as methods."""

    def __init__(self, design: ObjectiveDesign, encoder: Network, parts: dict[str, Network | None]):
        super().__init__()
        self.blueprint = design.blueprint
        self.params = design.params
        self.roles = design.roles
        self.encoder = encoder
        self._prefix = design.roles.prefix
        for name, part in parts.items():
            setattr(self, name, part)
        # What forward needs from the graph, read now as plain ints and tuples: a forward that walked the
        # networkx graph would break torch.compile's graph (and does not trace into torch.export)
        patchify = design.roles.patchify
        self._patch_count = encoder.graph.nx.nodes[patchify]["output"].dims[0] if patchify else None
        if design.roles.body is not None:
            encoder.segment(*design.roles.body)
        if design.roles.embedding is not None:
            encoder.segment(encoder.paths[0], design.roles.embedding)

    # -- the encoder's roles ------------------------------------------------------------------
    def patch_values(self, images: torch.Tensor) -> torch.Tensor:
        """(B, N, patch values): the raw patches, in the order the encoder's patchify reads them."""
        return self.encoder.get_submodule(self.roles.patchify).cut(images)

    def embed(self, patches: torch.Tensor) -> torch.Tensor:
        """Patch values → patch tokens, by the encoder's patchify (norms and projection)."""
        return self.encoder.get_submodule(self.roles.patchify).project(patches)

    def patch_positions(self) -> torch.Tensor | None:
        """(N, D) positions of the patch tokens (those of special tokens left out), or None."""
        if self.roles.positions is None:
            return None
        module = self.encoder.get_submodule(self.roles.positions)
        table = getattr(module, "pos", None)
        if table is None:  # kind: none
            return None
        return table[self._prefix:self._prefix + self._patch_count]

    def body(self, tokens: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        first, last = self.roles.body
        return self.encoder.run(tokens, first, last, context=context)

    def embedding(self, images: torch.Tensor) -> torch.Tensor:
        """The output of the encoder's embedding layer."""
        return self.encoder.run(images, self.encoder.paths[0], self.roles.embedding)

    def extra_repr(self) -> str:
        return f"objective={self.blueprint.kind!r}, encoder={self.encoder.blueprint.name!r}"


def compile_objective(design: ObjectiveDesign, device: Any = None, **kwargs) -> nn.Module:
    """Build encoder, parts and the objective module (``kwargs``: modules or functions the objective takes,
    such as a distillation teacher or an augmentation)."""
    def make():
        encoder = compile_graph(design.encoder, keep=design.roles.keep or None)
        parts = {name: compile_graph(g) if g is not None else None for name, g in design.parts.items()}
        return design.spec.module(design, encoder, parts, **kwargs)

    if device is None:
        return make()
    with torch.device(device):
        return make()
