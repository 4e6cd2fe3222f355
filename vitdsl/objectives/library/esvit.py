"""EsViT (Li et al., 2021): DINO for multi-stage encoders, plus a region loss. The embedding is the feature
map before the pooling; its mean is projected as in DINO (``projector``), and each of its positions by
``region_projector``: every student region learns the teacher distribution of the other view's region it
resembles most (the largest dot product of the two feature maps)."""
from __future__ import annotations

from typing import Any

from ...blocks.shape import Shape
from ...errors import VitdslError
from ..roles import Finder, Roles
from ..spec import register
from .dino import SelfDistillation, expect, views


def regions(shape: Shape) -> tuple[int, int] | None:
    """(regions, width) of a feature map or of tokens on a 2-D patch grid with no special tokens."""
    if shape.kind == "image" and shape.groups == 1:
        c, h, w = shape.dims
        return h * w, c
    if (shape.kind == "tokens" and shape.grid is not None and len(shape.grid) == 2 and not shape.prefix
            and not shape.suffix and shape.groups == 1):
        return shape.dims
    return None


@register
class EsViTSpec(SelfDistillation):
    """The view loss of DINO on the feature map's mean (with EsViT's log(softmax + 1e-20)) and a region
    loss, averaged; the teacher (an EMA copy of encoder and both projectors) is ``teacher``, the centres
    ``teacher_view_centers`` and ``teacher_region_centers``."""

    kind = "esvit"
    reference = "vit_pytorch.es_vit.EsViTTrainer"
    parts = {"projector": "projects the mean of the feature map to K logits: vector [$embedding_dim] → vector [K]",
             "region_projector": "projects each region to K logits: tokens [$regions, $embedding_dim] → "
                                 "tokens [$regions, K]"}
    provides = {"embedding_dim": "channels of the embedding's feature map (width of its tokens)",
                "regions": "positions of the embedding's feature map (its tokens)"}

    def default_embedding(self, finder: Finder) -> str:
        """The layer feeding the pooling (the classifier head, or the last layer, when there is none)."""
        readout = finder.readout()
        return finder.node(readout).inputs[0] if readout else super().default_embedding(finder)

    def roles(self, finder: Finder) -> Roles:
        roles = super().roles(finder)
        shape = finder.graph.shape(roles.embedding)
        if regions(shape) is None:
            default = self.default_embedding(finder)
            better = (f"name the layer before the pooling, embedding: {default}" if regions(finder.graph.shape(default))
                      else "choose a layer of the encoder's body before any class token joins or pooling")
            raise finder.error(f"the embedding layer '{roles.embedding}' gives {shape}; EsViT compares regions, so it "
                               "needs a feature map, or tokens on a patch grid without special tokens", better)
        return roles

    def values(self, finder: Finder, roles: Roles) -> dict[str, Any]:
        n, d = regions(finder.graph.shape(roles.embedding))
        return {"embedding_dim": d, "regions": n}

    def check_parts(self, finder: Finder, roles: Roles, parts: dict) -> None:
        v = self.values(finder, roles)
        for name in self.parts:
            if parts[name] is None:
                raise VitdslError(f"part '{name}' cannot be switched off: EsViT compares its logits", path=name)
        expect(parts["projector"], "projector", Shape.vector(v["embedding_dim"]))
        expect(parts["region_projector"], "region_projector", Shape.tokens(v["regions"], v["embedding_dim"]))

    def module(self, design, encoder, parts: dict, **kwargs):
        from .esvit_module import EsViT

        return EsViT(design, encoder, parts, self, **views(self.kind, kwargs))
