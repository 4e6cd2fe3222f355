"""``pool-attn``: MViT's pooling attention (Fan et al., 2021; MViTv2, Li et al., 2022) — queries, keys and values
pooled on the patch grid after their projection, so that a block can shrink the map and attend over fewer keys."""
from __future__ import annotations

from typing import Literal

from pydantic import Field, PositiveInt, field_validator, model_validator

from ..base import linear_params, need, need_fit, norm_params, register
from ..shape import Shape
from .core import AttentionSpec


@register
class PoolAttn(AttentionSpec):
    """Multiscale pooling attention over tokens of a 2-D patch grid (MViTv2). One Linear gives the queries, keys
    and values at the output width ``dim``; each head's queries, and its keys and values, are then pooled on the
    grid (``pool``: by default a depthwise k×k convolution shared by the heads, then a LayerNorm over the head's
    channels), the queries with stride ``q_stride`` (the block's output map is the input's divided by it), the
    keys and values with ``kv_stride`` (fewer keys). Special tokens leading the sequence (the class token) join
    every attention unpooled. The logits get decomposed relative positions (``rel_pos``), the pooled queries
    are added to the attention's output (``residual_pool``), and the output projection follows. The block's
    residual is the input, max-pooled where the queries are strided (kernel s + 1, stride s, padding
    (s + 1) // 2) and, where the width changes, first projected by a Linear — of the normed input, as MViTv2's
    code and timm's have it. A pooled tensor with kernel 1 and stride 1 is left as it is (no pooling, no norm).
    """

    block = "pool-attn"
    capabilities = frozenset({"attention"})
    takes = ("tokens",)
    family = "attention"

    dim: PositiveInt | None = Field(None, description="Output width, the queries', keys' and values' too; the "
                                    "input's when unset. A wider one is MViTv2's dim_mul_in_att: the first "
                                    "block of a stage widens in its attention (heads and dim_head are of this "
                                    "width).")
    pool: Literal["conv", "max", "avg"] = Field(
        "conv", description="How queries, keys and values are pooled, head by head: conv = a depthwise "
                            "pool_kernel×pool_kernel convolution without bias over a head's channels, shared by "
                            "the heads, then a LayerNorm over them (norm_eps; MViTv2's and timm's default mode); "
                            "max or avg = a max or average pool of that kernel (MViT v1's), no norm. Padding "
                            "pool_kernel // 2.")
    pool_kernel: PositiveInt = Field(3, description="Kernel of the pooling (odd): 3 in the papers.")
    q_stride: PositiveInt = Field(1, description="Stride of the queries' pooling: the output map is the input's "
                                  "divided by it (MViTv2: 2 in the first block of every stage after the first); "
                                  "it must divide the map, and be even where the residual max-pools.")
    kv_stride: PositiveInt = Field(1, description="Stride of the keys' and values' pooling: attention runs over "
                                   "the map divided by it (MViTv2: 4 in the first stage, then 4 divided by the "
                                   "stages' query strides so far, at least 1); it must divide the map.")
    rel_pos: Literal["decomposed", "none"] = Field(
        "decomposed", description="decomposed: MViTv2's relative positions, a learned table per axis (rel_pos_h "
                                  "and rel_pos_w, 2·max(query, key side) − 1 rows of dim_head) read at the offset "
                                  "of the query's and key's rows and columns on the finer grid; each query · "
                                  "its row's and column's rows gives the logits' bias (timm's rel_pos_type "
                                  "spatial; special tokens get none); none.")
    residual_pool: bool = Field(True, description="Add the pooled queries to the attention's output, head by "
                                "head, before the output projection (MViTv2's residual pooling connection).")

    @field_validator("pool_kernel")
    @classmethod
    def _odd(cls, v: int) -> int:
        if v % 2 == 0:
            raise ValueError("pool_kernel must be odd, so that padding kernel // 2 keeps a stride-1 map")
        return v

    @model_validator(mode="after")
    def _placement(self):
        if self.norm == "post":
            raise ValueError("norm: post has no place here: the residual is pooled and projected from the input, "
                             "so the block normalises its input (norm: pre) or nothing (norm: none)")
        return self

    # -- geometry ----------------------------------------------------------------------------------
    def width(self, x: Shape) -> int:
        return self.dim or x.features

    def pooled(self, stride: int) -> bool:
        """Whether a tensor with this stride is pooled at all (kernel 1 and stride 1: left as it is)."""
        return self.pool_kernel > 1 or stride > 1

    def maps(self, x: Shape) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]]:
        """(input grid, query grid, key grid), checking that the block takes the tokens."""
        need(x.grid is not None and len(x.grid) == 2, "pool-attn pools on the tokens' 2-D patch grid, but these "
             "carry none", "place the block where the tokens still carry their grid (after patchify)")
        need(x.suffix == 0, f"pool-attn pools the patch grid, but {x.suffix} special token(s) trail the sequence",
             "append trailing tokens after the last pool-attn")
        (h, w), n = x.grid, x.dims[0]
        need(n == x.prefix + h * w, f"{n} tokens are not {x.prefix} special token(s) and the {h}×{w} patch grid")
        need_fit(h, w, self.q_stride, f"q_stride {self.q_stride} does not divide", "strides")
        need_fit(h, w, self.kv_stride, f"kv_stride {self.kv_stride} does not divide", "strides")
        s = self.q_stride
        # the residual's max pool (kernel s + 1, padding (s + 1) // 2) gives the queries' map for even s only
        need(not self.residual or s == 1 or s % 2 == 0, f"q_stride {s}: the residual's max pool (kernel {s + 1}, "
             f"padding {(s + 1) // 2}) would give a map of {h // s + 1}×{w // s + 1}, the queries' is "
             f"{h // s}×{w // s}", "use an even q_stride, or residual: false")
        return (h, w), (h // s, w // s), (h // self.kv_stride, w // self.kv_stride)

    def infer(self, x: Shape) -> Shape:
        d = self.width(x)
        self.geometry(d)
        _, (qh, qw), _ = self.maps(x)
        return Shape.tokens(x.prefix + qh * qw, d, grid=(qh, qw), prefix=x.prefix, groups=x.groups)

    def rel_rows(self, x: Shape) -> tuple[int, int]:
        """Rows of the rel_pos_h and rel_pos_w tables (0 without them)."""
        if self.rel_pos == "none":
            return 0, 0
        _, (qh, qw), (kh, kw) = self.maps(x)
        return 2 * max(qh, kh) - 1, 2 * max(qw, kw) - 1

    # -- rules ----------------------------------------------------------------------------------------
    def count_params(self, x: Shape) -> int:
        c, d = x.features, self.width(x)
        heads, dh = self.geometry(d)
        n = linear_params(c, 3 * heads * dh, self.qkv_bias) + sum(self.rel_rows(x)) * dh
        if self.pool == "conv":  # a dh-channel depthwise kernel and a LayerNorm(dh) per pooled tensor
            n += (dh * self.pool_kernel ** 2 + 2 * dh) * (self.pooled(self.q_stride) + 2 * self.pooled(self.kv_stride))
        if self.projects_out(d):
            n += linear_params(heads * dh, d, self.out_bias)
        if self.norm == "pre":
            n += norm_params(self.norm_type, c)
        if self.residual and c != d:
            n += linear_params(c, d)
        return n + (d if self.layer_scale is not None else 0)

    def flops(self, x: Shape) -> int:
        c, d, p = x.features, self.width(x), x.prefix
        heads, dh = self.geometry(d)
        inner = heads * dh
        (h, w), (qh, qw), (kh, kw) = self.maps(x)
        n, nq, nk = p + h * w, p + qh * qw, p + kh * kw
        total = 2 * n * c * 3 * inner + 4 * nq * nk * inner
        if self.pool == "conv":  # depthwise: k·k products per output value
            k2 = self.pool_kernel ** 2
            total += 2 * inner * k2 * (qh * qw * self.pooled(self.q_stride) + 2 * kh * kw * self.pooled(self.kv_stride))
        if self.rel_pos == "decomposed":  # each query against its row's and its column's table rows
            total += 2 * inner * qh * qw * (kh + kw)
        if self.projects_out(d):
            total += 2 * nq * inner * d
        if self.residual and c != d:
            total += 2 * n * c * d
        return total

    def pattern(self, x: Shape) -> str:
        q, kv = self.q_stride, self.kv_stride
        word = "pooled" if self.pool == "conv" else f"{self.pool}-pooled"
        parts = []
        if self.pooled(q) and self.pooled(kv) and q == kv:
            parts.append(f"{word} q/kv ×{q}")
        else:
            parts += [f"q ×{q}"] if self.pooled(q) else []
            parts += [f"kv ×{kv}"] if self.pooled(kv) else []
            parts = [f"{word} " + ", ".join(parts)] if parts else ["global"]
        if self.rel_pos == "decomposed":
            parts.append("rel-pos decomposed")
        return ", ".join(parts)

    def build(self, x: Shape):
        from ..modules.attention.pooled import PoolAttention

        d = self.width(x)
        heads, dh = self.geometry(d)
        (h, w), _, _ = self.maps(x)
        return PoolAttention(
            dim=x.features, dim_out=d, heads=heads, dim_head=dh, grid=(h, w), prefix=x.prefix, pool=self.pool,
            kernel=self.pool_kernel, q_stride=self.q_stride, kv_stride=self.kv_stride, rel_pos=self.rel_pos,
            residual_pool=self.residual_pool, qkv_bias=self.qkv_bias, out_bias=self.out_bias,
            project_out=self.projects_out(d), attn_dropout=self.attn_dropout, dropout=self.dropout,
            **self.mixer_kwargs())
