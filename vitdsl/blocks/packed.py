"""Blocks for variable-size images packed into sequences (NaViT): patchify-packed,
packed-attn, attn-pool.

``patchify-packed`` turns an ``images`` input (samples that are lists of images of any size up to the
declared maximum) into ``packed`` tokens; the packing (image of each token, padding, patch row and
column) travels with the tensor at run time (see ``modules/packed.py``). Token-wise blocks (``mlp``,
``norm``) take packed tokens as they are; blocks that mix tokens must keep images apart, so only the
packed-aware ones below take them. Shape rules see one image of the maximum size per sample.
"""
from __future__ import annotations

from typing import Literal

from pydantic import Field, PositiveInt

from .attention import AttentionSpec
from .base import BlockSpec, divisors_hint, fmt_pair, linear_params, need, norm_params, pair, register
from .shape import Shape

PatchNorm = Literal["none", "layer", "layer-nobias"]


@register
class PackedPatchify(BlockSpec):
    """Cut each image of each sample into patches, pack a sample's patches into one sequence and
    project them to tokens (NaViT's "Patch n' Pack").

    Takes ``images``: a list of samples, each a list of (C, H, W) images of any size up to the declared
    maximum with sides divisible by the patch (a flat list is one sample, or is grouped by
    ``max_seq_len``), or a plain (B, C, H, W) batch (one image per sample). Gives ``packed`` tokens
    padded to the longest sample, which carry each token's image, row and column.
    """

    block = "patchify-packed"
    takes = ("images", "image")
    family = "embedding"

    patch: PositiveInt | tuple[PositiveInt, PositiveInt] = Field(
        description="Patch size, one number or [height, width].")
    dim: PositiveInt = Field(description="Token width after the projection.")
    order: Literal["hwc", "chw"] = Field(
        "hwc", description="Order of a patch's values before the projection: hwc = (p1 p2 c), "
                           "chw = (c p1 p2) as NaViT and nn.Unfold have it.")
    pre_norm: PatchNorm = Field("none", description="Norm of the raw patch vector before the projection.")
    post_norm: PatchNorm = Field("none", description="Norm of the token after the projection.")
    bias: bool = Field(True, description="Bias in the projection.")
    token_dropout: float = Field(0.0, ge=0, lt=1, description="While training, keep a random "
                                 "max(1, int(n·(1-p))) of each image's n patches.")
    max_seq_len: PositiveInt | None = Field(
        None, description="Pack a flat list of images greedily, in order, into samples of at most this many "
                          "tokens (vit-pytorch's group_images); unset: a flat list is one sample.")

    def grid(self, x: Shape) -> tuple[int, int]:
        ph, pw = pair(self.patch)
        _, h, w = x.dims
        need(h % ph == 0, f"maximum image height {h} is not divisible by the patch height {ph}",
             divisors_hint(h, ph, "heights"))
        need(w % pw == 0, f"maximum image width {w} is not divisible by the patch width {pw}",
             divisors_hint(w, pw, "widths"))
        return h // ph, w // pw

    def patch_dim(self, x: Shape) -> int:
        ph, pw = pair(self.patch)
        return x.features * ph * pw

    def infer(self, x: Shape) -> Shape:
        gh, gw = self.grid(x)
        return Shape("packed", (gh * gw, self.dim), (gh, gw))

    def count_params(self, x: Shape) -> int:
        p = self.patch_dim(x)
        return (norm_params(self.pre_norm, p) + linear_params(p, self.dim, self.bias)
                + norm_params(self.post_norm, self.dim))

    def flops(self, x: Shape) -> int:
        gh, gw = self.grid(x)
        return 2 * gh * gw * self.patch_dim(x) * self.dim

    def pattern(self, x: Shape) -> str:
        return f"patch {fmt_pair(pair(self.patch))}, packed"

    def build(self, x: Shape):
        from .modules.packed import PackedPatchify

        return PackedPatchify(x.features, pair(self.patch), self.dim, self.order, self.pre_norm, self.post_norm,
                              self.bias, (x.dims[1], x.dims[2]), self.token_dropout, self.max_seq_len)


class _PackedAttentionSpec(AttentionSpec):
    qk_norm: bool = Field(False, description="Per-head RMS norm of queries and keys (ViT-22B): "
                          "normalize(x)·√dim_head·γ, with a learned γ per head and channel.")
    scale: float | None = Field(None, gt=0, description="Scale of the attention logits. When unset: "
                                "dim_head^-0.5 (NaViT uses 1 with qk_norm).")

    def qk_params(self, dim: int) -> int:
        heads, dim_head = self.geometry(dim)
        return 2 * heads * dim_head if self.qk_norm else 0

    def packed_kwargs(self, dim: int) -> dict:
        return dict(qk_norm=self.qk_norm, scale=self.scale, **self.attention_kwargs(dim))


@register
class PackedAttn(_PackedAttentionSpec):
    """Self-attention over packed tokens: each token attends only to the tokens of its own image
    (not to other images of its sample, nor to padding). On plain tokens: global attention."""

    block = "packed-attn"
    takes = ("packed", "tokens")
    family = "attention"

    def infer(self, x: Shape) -> Shape:
        self.geometry(x.features)
        return x

    def count_params(self, x: Shape) -> int:
        return self.attention_params(x.features, self.qk_params(x.features))

    def flops(self, x: Shape) -> int:
        n, d = x.dims
        return self.attention_flops(n, n, d)

    def pattern(self, x: Shape) -> str:
        return "per image" if x.kind == "packed" else "global"

    def build(self, x: Shape):
        from .modules.packed import PackedAttention

        return PackedAttention(**self.packed_kwargs(x.features))


@register
class AttnPool(_PackedAttentionSpec):
    """Attention pooling: one learned query per image attends to that image's tokens (taken as they
    are, not normalised), then the query is added back (``residual``). The norm options apply to the
    query. Gives one vector per image: on packed tokens the images of all samples in order, on plain
    tokens one per sample."""

    block = "attn-pool"
    takes = ("packed", "tokens")
    family = "head"

    init_std: float = Field(1.0, gt=0, description="Standard deviation of the query's normal initialisation.")

    def infer(self, x: Shape) -> Shape:
        self.geometry(x.features)
        return Shape.vector(x.features)

    def count_params(self, x: Shape) -> int:
        d = x.features
        return self.attention_params(d, self.qk_params(d) + d)

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

        return AttentionPool(init_std=self.init_std, **self.packed_kwargs(x.features))
