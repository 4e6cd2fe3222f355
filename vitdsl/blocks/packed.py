"""Attention pooling, the head of NaViT's variable-size images.

``patchify`` turns an ``images`` input (samples that are lists of images of any size up to the
declared maximum) into ``packed`` tokens; the packing (image of each token, padding, patch row and
column) travels beside the tensor at run time as its extras (see ``modules/packed.py``). Token-wise blocks (``mlp``,
``norm``) take packed tokens as they are; blocks that mix tokens must keep images apart, so only the
packed-aware ones (``global-attn``, ``pos-embed: factorized`` and ``attn-pool``) take them. Shape
rules see one image of the maximum size per sample.
"""
from __future__ import annotations

from typing import Literal

from pydantic import Field

from .attention import Numerics
from .base import register
from .shape import Shape

PatchNorm = Literal["none", "layer", "layer-nobias"]


@register
class AttnPool(Numerics):
    """Attention pooling: one learned query per image attends to that image's tokens (taken as they
    are, not normalised), then the query is added back (``residual``). The norm options apply to the
    query. Gives one vector per image: on packed tokens the images of all samples in order, on plain
    tokens one per sample. SigLIP's MAP head (timm's AttentionPoolLatent) is this with ``norm: none`` and
    ``residual: false``, followed by an ``mlp`` on the pooled vector (``siglip.yaml``)."""

    block = "attn-pool"
    capabilities = frozenset({"readout", "attention"})
    takes = ("packed", "tokens")
    family = "head"

    init_std: float = Field(0.02, gt=0, description="Standard deviation of the query's normal initialisation.")

    def infer(self, x: Shape) -> Shape:
        self.geometry(x.features)
        return Shape.vector(x.features)

    def count_params(self, x: Shape) -> int:
        d = x.features
        return self.attention_params(d, d)

    def flops(self, x: Shape) -> int:
        n, d = x.dims
        heads, dim_head = self.geometry(d)
        inner = heads * dim_head
        out = 2 * inner * d if self.projects_out(d) else 0
        return 2 * d * inner + 4 * n * d * inner + 4 * n * inner + out

    def pattern(self, x: Shape) -> str:
        return "1 query per image"

    def build(self, x: Shape):
        from .modules.packed import AttentionPool

        return AttentionPool(init_std=self.init_std, **self.attention_kwargs(x.features))
