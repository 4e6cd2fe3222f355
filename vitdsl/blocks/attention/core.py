"""What every attention block shares: heads and their width, the projections' biases, dropout, and the
parameter and FLOP rules of the core; ``Numerics``, the logit options of token attention."""
from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, PositiveInt, field_validator, model_validator

from ..base import MixerSpec, ShapeError, linear_params, need


class AttentionSpec(MixerSpec):
    heads: PositiveInt | None = Field(None, description="Number of heads. When unset: width / dim_head.")
    dim_head: PositiveInt | None = Field(None, description="Width of one head. When unset: width / heads "
                                         "(64 when heads is unset too).")
    qkv_bias: bool | Literal["qv"] = Field(
        True, description="Bias in the query/key/value projection: on, as in the ViT paper's "
                           "code and timm, and in Swin, MaxViT, NesT, Twins, CrossFormer, RegionViT (local-attn), "
                           "CaiT, XCiT, CrossViT (cross-attn) and big_vision's attention pooling (attn-pool); CCT "
                           "and T2T-ViT have none and their blueprints say so (conv-attn, for LeViT, has its own "
                           "default). vit-pytorch has none anywhere (its compat overlay). qv: biases on the queries "
                           "and values only, none on the keys (BEiT; a key bias adds the same logit to every key of "
                           "a query, which the softmax cancels): parameters q_bias and v_bias of the projection; "
                           "global-attn only.")
    out_bias: bool = Field(True, description="Bias in the output projection.")
    project_out: Literal["always", "auto"] = Field(
        "always", description="auto: no output projection when heads == 1 and dim_head == width "
                              "(vit-pytorch's rule, in its compat overlay); always: always project (the papers).")
    attn_dropout: float = Field(0.0, ge=0, lt=1, description="Dropout on the attention weights.")
    dropout: float = Field(0.0, ge=0, lt=1, description="Dropout after the output projection.")

    @model_validator(mode="after")
    def _qv_bias_here(self):
        if self.qkv_bias == "qv" and self.block != "global-attn":
            raise ValueError(f"qkv_bias: qv (query and value biases, no key bias: BEiT, EVA-02) is an option of "
                             f"global-attn, not of {self.block}")
        return self

    def geometry(self, dim: int) -> tuple[int, int]:
        """(heads, dim_head) for a token width, checking that they fit."""
        heads, dim_head = self.heads, self.dim_head
        if heads is None and dim_head is None:
            dim_head = 64
        if heads is None:
            if dim % dim_head:
                raise ShapeError(f"width {dim} is not divisible by dim_head {dim_head}, so heads cannot be derived",
                                 hint="set heads explicitly, or a dim_head that divides the width")
            heads = dim // dim_head
        if dim_head is None:
            if dim % heads:
                raise ShapeError(f"width {dim} is not divisible by heads {heads}, so dim_head cannot be derived",
                                 hint="set dim_head explicitly, or a number of heads that divides the width")
            dim_head = dim // heads
        return heads, dim_head

    def value_width(self, dim: int) -> int:
        """Width of one head's values: the block's dim_value where it has one, else dim_head."""
        return getattr(self, "dim_value", None) or self.geometry(dim)[1]

    def projects_out(self, dim: int) -> bool:
        heads, _ = self.geometry(dim)
        return self.project_out == "always" or not (heads == 1 and self.value_width(dim) == dim)

    # -- what the numerics options add (none here; see Numerics) ---------------------------------------
    def numerics_params(self, heads: int, inner: int) -> int:
        return 0

    def mix_flops(self, heads: int, queries: int, keys: int) -> int:
        return 0

    def numerics_kwargs(self) -> dict:
        return {}

    def pattern_extras(self) -> str:
        return ""

    def notes(self) -> list[str]:
        """More words for the pattern, between head mixing and qk-norm."""
        return []

    # -- rules of the core -------------------------------------------------------------------------------
    def qkv_params(self, dim: int) -> int:
        heads, dim_head = self.geometry(dim)
        inner, inner_v = heads * dim_head, heads * self.value_width(dim)
        bias = {True: 2 * inner + inner_v, False: 0, "qv": inner + inner_v}[self.qkv_bias]
        return linear_params(dim, 2 * inner + inner_v, False) + bias

    def attention_params(self, dim: int, extra: int = 0) -> int:
        heads, dim_head = self.geometry(dim)
        inner, inner_v = heads * dim_head, heads * self.value_width(dim)
        n = self.qkv_params(dim) + self.mixer_params(dim) + extra
        n += self.numerics_params(heads, inner)
        if self.projects_out(dim):
            n += linear_params(inner_v, dim, self.out_bias)
        return n

    def attention_flops(self, tokens: int, group: int, dim: int, queries: int | None = None,
                        memories: int = 0) -> int:
        """FLOPs for `tokens` tokens attending within groups of `group` keys (all tokens query unless
        `queries` says how many do), `memories` more keys and values each."""
        heads, dim_head = self.geometry(dim)
        inner, inner_v = heads * dim_head, heads * self.value_width(dim)
        q = tokens if queries is None else queries
        keys = group + memories
        n = 2 * q * dim * inner + 2 * (tokens + memories) * dim * (inner + inner_v)
        n += 2 * q * keys * (inner + inner_v) + self.mix_flops(heads, q, keys)
        if self.projects_out(dim):
            n += 2 * tokens * inner_v * dim
        return n

    def attention_kwargs(self, dim: int) -> dict:
        heads, dim_head = self.geometry(dim)
        return dict(dim=dim, heads=heads, dim_head=dim_head, qkv_bias=self.qkv_bias, out_bias=self.out_bias,
                    project_out=self.projects_out(dim), attn_dropout=self.attn_dropout, dropout=self.dropout,
                    dim_value=self.value_width(dim), **self.numerics_kwargs(), **self.mixer_kwargs())

    def attention_parts(self, dim: int) -> dict[str, int]:
        """Parameters of the named parts every attention module has (for partial weight sharing)."""
        heads, dim_head = self.geometry(dim)
        inner = heads * dim_head
        parts = {"qkv": self.qkv_params(dim)}
        if self.norm != "none":
            parts["norm"] = self.mixer_params(dim) - (dim if self.layer_scale is not None else 0)
        if self.projects_out(dim):
            parts["out"] = linear_params(inner, dim, self.out_bias)
        return parts


class Numerics(AttentionSpec):
    """The logit options of attention over tokens and windows (global-attn, local-attn, cross-attn, attn-pool, and
    the paper-specific blocks built on them)."""

    head_mix: Literal["none", "talking", "reattention"] = Field(
        "none", description="Learned mixing across heads: talking = an (h, h) mix of the logits before the "
                            "softmax and of the weights after it (CaiT's talking heads); reattention = an (h, h) "
                            "mix of the weights after the softmax, then a LayerNorm over heads (DeepViT).")
    talking_bias: bool = Field(True, description="talking: each head mix is an nn.Linear over heads with a bias, "
                               "as CaiT's code (and timm) has it; false: two bare (h, h) matrices (vit-pytorch, "
                               "its compat overlay).")
    qk_norm: bool = Field(False, description="Per-head RMS norm of queries and keys (ViT-22B, NaViT): "
                          "normalize(x)·√dim_head·γ, with a learned γ per head and channel.")
    scale: float | None = Field(None, gt=0, description="Scale of the attention logits. When unset: "
                                "dim_head^-0.5 (NaViT uses 1 with qk_norm).")
    rope: Literal["none", "axial", "mixed"] = Field(
        "none", description="Rotary position embedding of queries and keys over the patch grid (after qk-norm), the "
                            "special tokens leading the sequence left unrotated. axial (EVA-02, as timm's "
                            "RotaryEmbeddingCat): with d/4 frequencies theta^(-i/(d/4)), i < d/4, each adjacent "
                            "channel pair of the first half of a head turns by the patch's row times a frequency, of "
                            "the second half by its column. mixed (RoPE-Mixed, Heo et al., 2024, as timm's "
                            "RotaryEmbeddingMixed): pair k of head h turns by row·f0[h,k] + column·f1[h,k] with "
                            "frequencies learned per block, head and pair (2·heads·d/2 parameters, 'rope.freqs'), "
                            "drawn as the axial magnitudes (base theta) turned by a random angle per head. axial: "
                            "global-attn and local-attn (a token's row and column inside its window); mixed: "
                            "global-attn only; dim_head a multiple of 4.")
    rope_theta: float = Field(10000.0, gt=0, description="rope: the base of the frequencies (mixed: of their "
                              "magnitudes when drawn; RoPE-ViT uses 100 axial, 10 mixed).")
    rope_first: Literal["row", "column"] = Field(
        "row", description="rope: the first coordinate, row (EVA-02; timm's grid_indexing ij) or column "
                           "(RoPE-ViT; timm's xy): axial turns the first half of each head's channels by it, the "
                           "second by the other; mixed multiplies it by f0 (rope.freqs[0]), the other by f1.")
    rope_ref: PositiveInt | None = Field(None, description="rope: positions rescaled as if the grid were this many "
                                         "patches a side (EVA-02's pre-training grid, 16: a model fine-tuned at "
                                         "336 or 448 keeps the positions' range); the grid's own when unset.")

    takes_rope: ClassVar[bool] = False  # whether the block passes the patch grid the rotation needs

    @field_validator("rope")
    @classmethod
    def _rope_where_built(cls, v):
        if v != "none" and not cls.takes_rope:
            raise ValueError(f"rope is an option of global-attn and local-attn, not of {cls.block}")
        return v

    def rope_kwargs(self, x) -> dict:
        """The rotation's table arguments for tokens ``x`` (their patch grid and special tokens), checked."""
        if self.rope == "none":
            return {}
        _, dim_head = self.geometry(x.features)
        need(x.kind == "tokens" and x.grid is not None and len(x.grid) == 2,
             "rope rotates by row and column, but these tokens carry no 2-D patch grid",
             "put global-attn with rope after patchify on an image")
        n, (h, w) = x.dims[0], x.grid
        need(n == x.prefix + h * w and not x.suffix, f"rope needs the special tokens first and then the {h}×{w} "
             f"patches, got {n} tokens with {x.prefix} leading and {x.suffix} trailing",
             "rotate before tokens are dropped or appended")
        need(dim_head % 4 == 0, f"rope splits each head into row and column pairs, so dim_head must be a "
             f"multiple of 4, got {dim_head}", "choose heads so that width / heads divides by 4")
        first = {"columns_first": True} if self.rope_first == "column" else {}
        if self.rope == "mixed":
            need(self.rope_ref is None, "rope: mixed learns its frequencies over the grid's own rows and columns: "
                 "rope_ref is for rope: axial", "drop rope_ref")
            return dict(rope=dict(kind="mixed", heads=self.geometry(x.features)[0], grid=tuple(x.grid),
                                  prefix=x.prefix, theta=self.rope_theta, **first))
        return dict(rope=dict(grid=tuple(x.grid), prefix=x.prefix, ref=self.rope_ref, theta=self.rope_theta, **first))

    def numerics_params(self, heads: int, inner: int) -> int:
        talking = 2 * heads * heads + (2 * heads if self.talking_bias else 0)
        n = {"none": 0, "talking": talking, "reattention": heads * heads + 2 * heads}[self.head_mix]
        return n + (2 * inner if self.qk_norm else 0) + (inner if self.rope == "mixed" else 0)  # mixed: fx, fy

    def mix_flops(self, heads: int, queries: int, keys: int) -> int:
        if self.head_mix == "none":  # else an (h, h) product per attention weight, once or (talking) twice
            return 0
        return 2 * heads * heads * queries * keys * (2 if self.head_mix == "talking" else 1)

    def numerics_kwargs(self) -> dict:
        return dict(head_mix=self.head_mix, qk_norm=self.qk_norm, scale=self.scale,
                    talking_bias=self.head_mix == "talking" and self.talking_bias)

    def pattern_extras(self) -> str:
        parts = [{"talking": "talking heads", "reattention": "re-attention"}.get(self.head_mix, ""),
                 *self.notes(), "qk-norm" if self.qk_norm else "",
                 {"none": "", "axial": "rope", "mixed": "rope mixed"}[self.rope]]
        return "".join(", " + p for p in parts if p)


# Options of the attention blocks that run on feature maps (global-attn and local-attn).
DIM_VALUE = ("Width of one head's values (and so of its output); dim_head, the query and key width, when "
             "unset (ScalableViT: keys 40 wide, values 32).")
VALUE_CONV = ("Kernel k of a full (not depthwise) k×k convolution, with bias and padding k // 2, over the map of "
              "values, added to the attention output before the output projection (ScalableViT's local "
              "interaction module); none when unset.")


def check_value_conv(kernel: int | None) -> None:
    if kernel is not None and kernel % 2 == 0:
        raise ValueError(f"value_conv must be odd so that padding keeps the map, got {kernel}")


def value_conv_cost(kernel: int | None, width: int, positions: int) -> tuple[int, int]:
    """(parameters, FLOPs) of the value convolution over `positions` positions of `width` channels."""
    if kernel is None:
        return 0, 0
    return width * width * kernel * kernel + width, 2 * positions * width * width * kernel * kernel
