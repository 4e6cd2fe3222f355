"""The attention family: one implementation, scoped globally or to local windows.

All attention blocks are residual mixers (norm, residual, layer scale, drop path; see ``MixerSpec``)
and run on ``torch.nn.functional.scaled_dot_product_attention`` unless maps are being recorded.
"""
from __future__ import annotations

from typing import Literal

from pydantic import Field, PositiveInt, model_validator

from .base import MixerSpec, ShapeError, linear_params, need, register, window_hint
from .shape import Shape


class AttentionSpec(MixerSpec):
    heads: PositiveInt | None = Field(None, description="Number of heads. When unset: width / dim_head.")
    dim_head: PositiveInt | None = Field(None, description="Width of one head. When unset: width / heads "
                                         "(64 when heads is unset too).")
    qkv_bias: bool = Field(False, description="Bias in the query/key/value projection.")
    out_bias: bool = Field(True, description="Bias in the output projection.")
    project_out: Literal["always", "auto"] = Field(
        "always", description="auto: no output projection when heads == 1 and dim_head == width "
                              "(vit-pytorch's rule); always: always project.")
    attn_dropout: float = Field(0.0, ge=0, lt=1, description="Dropout on the attention weights.")
    dropout: float = Field(0.0, ge=0, lt=1, description="Dropout after the output projection.")
    head_mix: Literal["none", "talking", "reattention"] = Field(
        "none", description="Learned mixing across heads: talking = an (h, h) mix of the logits before the "
                            "softmax and of the weights after it (CaiT's talking heads); reattention = an (h, h) "
                            "mix of the weights after the softmax, then a LayerNorm over heads (DeepViT).")
    memories: int = Field(0, ge=0, description="Learned memory tokens appended to the keys and values, not "
                          "normalised (learnable-memory ViT).")
    task_tokens: int = Field(0, ge=0, description="Isolate the first n tokens (new task tokens): they attend to "
                             "everything, the other tokens only to each other, so a frozen backbone's "
                             "outputs are unchanged (learnable-memory adapters).")
    temperature: Literal["fixed", "learned"] = Field(
        "fixed", description="fixed: logits scaled by dim_head^-0.5; learned: by exp(t), t one learned scalar "
                             "initialised to log(dim_head^-0.5) (LSA, vit-pytorch's small-dataset ViT).")
    mask_self: bool = Field(False, description="Mask each token's attention to itself (the diagonal; LSA).")

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

    def projects_out(self, dim: int) -> bool:
        heads, dim_head = self.geometry(dim)
        return self.project_out == "always" or not (heads == 1 and dim_head == dim)

    def attention_params(self, dim: int, extra: int = 0) -> int:
        heads, dim_head = self.geometry(dim)
        inner = heads * dim_head
        n = linear_params(dim, 3 * inner, self.qkv_bias) + self.mixer_params(dim) + extra
        n += {"none": 0, "talking": 2 * heads * heads, "reattention": heads * heads + 2 * heads}[self.head_mix]
        n += self.memories * dim
        n += 1 if self.temperature == "learned" else 0
        if self.projects_out(dim):
            n += linear_params(inner, dim, self.out_bias)
        return n

    def attention_flops(self, tokens: int, group: int, dim: int, queries: int | None = None) -> int:
        """FLOPs for `tokens` tokens attending within groups of `group` keys (all tokens query unless
        `queries` says how many do)."""
        heads, dim_head = self.geometry(dim)
        inner = heads * dim_head
        q = tokens if queries is None else queries
        keys = group + self.memories
        n = 2 * q * dim * inner + 2 * (tokens + self.memories) * dim * 2 * inner + 4 * q * keys * inner
        if self.head_mix != "none":  # an (h, h) product per attention weight, once or (talking) twice
            n += 2 * heads * heads * q * keys * (2 if self.head_mix == "talking" else 1)
        if self.projects_out(dim):
            n += 2 * tokens * inner * dim
        return n

    def attention_kwargs(self, dim: int) -> dict:
        heads, dim_head = self.geometry(dim)
        return dict(dim=dim, heads=heads, dim_head=dim_head, qkv_bias=self.qkv_bias, out_bias=self.out_bias,
                    project_out=self.projects_out(dim), attn_dropout=self.attn_dropout, dropout=self.dropout,
                    head_mix=self.head_mix, memories=self.memories, task_tokens=self.task_tokens,
                    temperature=self.temperature, mask_self=self.mask_self, **self.mixer_kwargs())

    def pattern_extras(self) -> str:
        parts = [{"talking": "talking heads", "reattention": "re-attention"}.get(self.head_mix, "")]
        parts += [f"+{self.memories} memories" if self.memories else ""]
        return "".join(", " + p for p in parts if p)


@register
class GlobalAttn(AttentionSpec):
    """Multi-head self-attention in which every token attends to every token."""

    block = "global-attn"
    takes = ("tokens",)
    family = "attention"

    over: Literal["tokens", "channels", "groups"] = Field(
        "tokens", description="tokens: tokens attend to tokens; channels: cross-covariance attention (XCiT) — "
                              "within each head, channels attend to channels through the l2-normalised "
                              "queries and keys, with a learned per-head temperature (used as exp(t)); "
                              "groups: each token attends to the tokens at its own position in every group "
                              "(ViViT's temporal attention across frames).")

    @model_validator(mode="after")
    def _channels_alone(self):
        if self.over == "channels" and (self.head_mix != "none" or self.memories or self.task_tokens
                                        or self.temperature != "fixed" or self.mask_self):
            raise ValueError("cross-covariance attention (over: channels) has its own per-head temperature and "
                             "takes no head_mix, memories, task_tokens, temperature or mask_self")
        if self.over == "groups" and (self.memories or self.task_tokens):
            raise ValueError("attention across groups (over: groups) takes no memories or task_tokens")
        return self

    def infer(self, x: Shape) -> Shape:
        self.geometry(x.features)
        need(self.task_tokens <= x.prefix, f"task_tokens {self.task_tokens} is more than the {x.prefix} special "
             "token(s) leading the sequence", "add the task tokens with a tokens block before the stack")
        if self.over == "groups":
            need(x.groups > 1, "over: groups attends across groups, but these tokens hold none",
                 "make groups first (patchify on a volume with frames: groups)")
        return x

    def count_params(self, x: Shape) -> int:
        heads, _ = self.geometry(x.features)
        return self.attention_params(x.features, heads if self.over == "channels" else 0)

    def flops(self, x: Shape) -> int:
        n, d = x.dims
        if self.over == "channels":  # (dh × dh) weights per head, each a product over the n tokens
            heads, dh = self.geometry(d)
            inner = heads * dh
            return 2 * n * d * 3 * inner + 4 * n * dh * inner + (2 * n * inner * d if self.projects_out(d) else 0)
        if self.over == "groups":  # n sequences of G tokens per sample, counted here per group
            return n * self.attention_flops(x.groups, x.groups, d) // x.groups
        return self.attention_flops(n, n, d)

    def pattern(self, x: Shape) -> str:
        if self.over == "groups":
            return f"across {x.groups} groups" + self.pattern_extras()
        return ("cross-covariance" if self.over == "channels" else "global") + self.pattern_extras()

    def build(self, x: Shape):
        from .modules.attention import Attention, CrossCovarianceAttention, GroupAttention

        if self.over == "groups":
            return GroupAttention(x.groups, **self.attention_kwargs(x.features))
        cls = CrossCovarianceAttention if self.over == "channels" else Attention
        return cls(**self.attention_kwargs(x.features))


@register
class LocalAttn(AttentionSpec):
    """Self-attention within windows of a feature map.

    ``partition: block`` attends within non-overlapping w×w windows (Swin/MaxViT block attention);
    ``partition: grid`` attends within a w×w grid of tokens spread evenly over the whole map (MaxViT
    grid attention: a sparse, global mix). Takes and gives a feature map (C, H, W).
    """

    block = "local-attn"
    takes = ("image",)
    family = "attention"

    partition: Literal["block", "grid"] = Field("block", description="block: contiguous windows; "
                                                "grid: dilated windows that span the whole map.")
    window: PositiveInt = Field(7, description="Window side w: attention runs over w×w tokens.")
    dim_head: PositiveInt | None = Field(32, description="Width of one head. When unset: width / heads.")
    rel_pos_bias: bool = Field(True, description="Learned relative position bias, a (2w-1)² × heads table.")
    windows: PositiveInt | None = Field(None, description="Instead of window: the number of windows along each "
                                        "side, so a window covers (height/n)×(width/n) tokens whatever the map "
                                        "size (NesT's nested blocks; with partition: grid, tokens n apart).")

    @model_validator(mode="after")
    def _geometry_given(self):
        if self.heads is None and self.dim_head is None:
            raise ValueError("set heads or dim_head")
        if self.memories or self.task_tokens:
            raise ValueError("memories and task_tokens are for global-attn; windows have no special tokens")
        if self.windows is not None and "window" in self.model_fields_set:
            raise ValueError("set window (the window side) or windows (how many per side), not both")
        return self

    def window_size(self, x: Shape) -> tuple[int, int]:
        """(window height, window width) on this map, checking that the windows tile it."""
        _, h, w = x.dims
        if self.windows is None:
            win = self.window
            need(h % win == 0 and w % win == 0,
                 f"window {win} does not divide the feature map {h}×{w} ({'height' if h % win else 'width'} "
                 f"{h if h % win else w})", window_hint(h, w))
            return win, win
        n = self.windows
        need(h % n == 0 and w % n == 0,
             f"{n} windows per side do not tile the feature map {h}×{w} ({'height' if h % n else 'width'} "
             f"{h if h % n else w})", window_hint(h, w, "window counts"))
        return h // n, w // n

    def infer(self, x: Shape) -> Shape:
        self.window_size(x)
        self.geometry(x.features)
        return x

    def count_params(self, x: Shape) -> int:
        heads, _ = self.geometry(x.features)
        wh, ww = self.window_size(x)
        table = (2 * wh - 1) * (2 * ww - 1) * heads if self.rel_pos_bias else 0
        return self.attention_params(x.features, table)

    def flops(self, x: Shape) -> int:
        c, h, w = x.dims
        wh, ww = self.window_size(x)
        return self.attention_flops(h * w, wh * ww, c)

    def pattern(self, x: Shape) -> str:
        kind = "window" if self.partition == "block" else "grid"
        wh, ww = self.window_size(x)
        return f"{kind} {wh}×{ww}" + self.pattern_extras()

    def build(self, x: Shape):
        from .modules.attention import LocalAttention

        return LocalAttention(partition=self.partition, window=self.window_size(x), rel_pos_bias=self.rel_pos_bias,
                              **self.attention_kwargs(x.features))


@register
class CrossAttn(AttentionSpec):
    """Attention from the special tokens (queries) to a sequence of context tokens: CaiT/XCiT class
    attention (one input: the context is the sequence's own patch tokens) or CrossViT's fusion (two
    inputs: the context is the second input's patch tokens).

    Only the queries are updated (``q + f(q)``); the other tokens pass through unchanged. Keys and values
    are ``[norm(queries), context]`` with ``include_self``, the context itself not normalised unless
    ``context_norm``. When the context is wider than the queries, the queries are projected in and
    the result back out with two Linear maps and attention runs at the context's width.
    """

    block = "cross-attn"
    takes = ("tokens",)
    arity = (1, 2)
    family = "attention"

    queries: Literal["prefix", "all"] = Field("prefix", description="prefix: the special tokens leading the "
                                              "sequence ask; all: every token does (a decoder's cross attention).")
    context: Literal["patches", "all"] = Field("patches", description="Which tokens of the context sequence "
                                               "are keys and values: its patch tokens, or all of them.")
    include_self: bool = Field(True, description="The queries' own tokens are keys and values too.")
    context_norm: bool = Field(False, description="Normalise the context with the block's norm as well.")

    @model_validator(mode="after")
    def _plain(self):
        if self.memories or self.task_tokens or self.norm == "post":
            raise ValueError("cross-attn takes no memories, task_tokens or post norm")
        return self

    def parts(self, x: Shape, ctx: Shape | None) -> tuple[int, int, int]:
        """(number of queries, number of context tokens, attention width)."""
        ctx = ctx or x
        q = x.prefix if self.queries == "prefix" else x.dims[0]
        c = ctx.dims[0] - ctx.prefix if self.context == "patches" else ctx.dims[0]
        return q, c, ctx.features

    def infer(self, x: Shape, ctx: Shape | None = None) -> Shape:
        if self.queries == "prefix":
            need(x.prefix >= 1, "cross-attn asks from the special tokens, but none lead the sequence",
                 "add '- tokens: {cls: 1}' before it, or set queries: all")
        q, c, width = self.parts(x, ctx)
        need(c >= 1, "cross-attn has no context tokens to attend to", "set context: all")
        self.geometry(width)
        return x

    def count_params(self, x: Shape, ctx: Shape | None = None) -> int:
        _, _, width = self.parts(x, ctx)
        proj = linear_params(x.features, width) + linear_params(width, x.features) if width != x.features else 0
        return self.attention_params(width, proj)

    def flops(self, x: Shape, ctx: Shape | None = None) -> int:
        q, c, width = self.parts(x, ctx)
        keys = c + (q if self.include_self else 0)
        heads, dim_head = self.geometry(width)
        inner = heads * dim_head
        n = 2 * q * width * inner + 2 * keys * width * 2 * inner + 4 * q * keys * inner
        if self.head_mix != "none":
            n += 2 * heads * heads * q * keys * (2 if self.head_mix == "talking" else 1)
        if self.projects_out(width):
            n += 2 * q * inner * width
        if width != x.features:
            n += 2 * 2 * q * x.features * width
        return n

    def pattern(self, x: Shape, ctx: Shape | None = None) -> str:
        q, c, _ = self.parts(x, ctx)
        who = f"{q} cls" if self.queries == "prefix" else "all"
        return f"cross: {who} → {c} context" + self.pattern_extras()

    def build(self, x: Shape, ctx: Shape | None = None):
        from .modules.attention import CrossAttention

        q, _, width = self.parts(x, ctx)
        kwargs = self.attention_kwargs(width)
        del kwargs["memories"], kwargs["task_tokens"]
        return CrossAttention(queries=q if self.queries == "prefix" else None,
                              context_skip=(ctx or x).prefix if self.context == "patches" else 0,
                              include_self=self.include_self, context_norm=self.context_norm,
                              query_dim=x.features, **kwargs)
