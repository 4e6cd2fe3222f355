"""The attention family: one implementation, scoped globally or to local windows.

All attention blocks are residual mixers (norm, residual, layer scale, drop path; see ``MixerSpec``)
and run on ``torch.nn.functional.scaled_dot_product_attention`` unless maps are being recorded.
"""
from __future__ import annotations

from typing import Literal

from pydantic import Field, PositiveInt, model_validator

from .base import MixerSpec, ShapeError, linear_params, need, need_fit, register, window_hint
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
    qk_norm: bool = Field(False, description="Per-head RMS norm of queries and keys (ViT-22B, NaViT): "
                          "normalize(x)·√dim_head·γ, with a learned γ per head and channel.")
    scale: float | None = Field(None, gt=0, description="Scale of the attention logits. When unset: "
                                "dim_head^-0.5 (NaViT uses 1 with qk_norm).")

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

    def attention_params(self, dim: int, extra: int = 0) -> int:
        heads, dim_head = self.geometry(dim)
        inner, inner_v = heads * dim_head, heads * self.value_width(dim)
        n = linear_params(dim, 2 * inner + inner_v, self.qkv_bias) + self.mixer_params(dim) + extra
        n += {"none": 0, "talking": 2 * heads * heads, "reattention": heads * heads + 2 * heads}[self.head_mix]
        n += self.memories * dim
        n += 1 if self.temperature == "learned" else 0
        n += 2 * inner if self.qk_norm else 0
        if self.projects_out(dim):
            n += linear_params(inner_v, dim, self.out_bias)
        return n

    def attention_flops(self, tokens: int, group: int, dim: int, queries: int | None = None) -> int:
        """FLOPs for `tokens` tokens attending within groups of `group` keys (all tokens query unless
        `queries` says how many do)."""
        heads, dim_head = self.geometry(dim)
        inner, inner_v = heads * dim_head, heads * self.value_width(dim)
        q = tokens if queries is None else queries
        keys = group + self.memories
        n = 2 * q * dim * inner + 2 * (tokens + self.memories) * dim * (inner + inner_v)
        n += 2 * q * keys * (inner + inner_v)
        if self.head_mix != "none":  # an (h, h) product per attention weight, once or (talking) twice
            n += 2 * heads * heads * q * keys * (2 if self.head_mix == "talking" else 1)
        if self.projects_out(dim):
            n += 2 * tokens * inner_v * dim
        return n

    def attention_kwargs(self, dim: int) -> dict:
        heads, dim_head = self.geometry(dim)
        return dict(dim=dim, heads=heads, dim_head=dim_head, qkv_bias=self.qkv_bias, out_bias=self.out_bias,
                    project_out=self.projects_out(dim), attn_dropout=self.attn_dropout, dropout=self.dropout,
                    head_mix=self.head_mix, memories=self.memories, task_tokens=self.task_tokens,
                    temperature=self.temperature, mask_self=self.mask_self, qk_norm=self.qk_norm, scale=self.scale,
                    dim_value=self.value_width(dim), **self.mixer_kwargs())

    def attention_parts(self, dim: int) -> dict[str, int]:
        """Parameters of the named parts every attention module has (for partial weight sharing)."""
        heads, dim_head = self.geometry(dim)
        inner = heads * dim_head
        parts = {"qkv": linear_params(dim, 2 * inner + heads * self.value_width(dim), self.qkv_bias)}
        if self.norm != "none":
            parts["norm"] = self.mixer_params(dim) - (dim if self.layer_scale is not None else 0)
        if self.projects_out(dim):
            parts["out"] = linear_params(inner, dim, self.out_bias)
        return parts

    def pattern_extras(self) -> str:
        parts = [{"talking": "talking heads", "reattention": "re-attention"}.get(self.head_mix, "")]
        parts += [f"+{self.memories} memories" if self.memories else "", "qk-norm" if self.qk_norm else ""]
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


@register
class GlobalAttn(AttentionSpec):
    """Multi-head self-attention in which every token attends to every token.

    On ``packed`` tokens (NaViT: several images packed into one sequence) a token attends only to
    the tokens of its own image, never to other images or padding.

    With ``samples`` it is adaptive token sampling (vit-pytorch's ``ats_vit``): when more than
    ``samples`` tokens follow the class token, each is scored by the class token's attention to it
    times the norm of its value, summed over heads; ``samples`` tokens are drawn from these scores
    with Gumbel-max (random in eval mode too), and only the class token and the distinct drawn
    tokens go on. Images that keep fewer tokens than the batch's most are padded on the right; the
    padding is masked out of every later global-attn (sampling or not), and honoured by per-token blocks
    (``mlp``, ``norm``), ``pool``, ``token-merge`` and ``token-ids``. The token count it gives is an upper
    bound, and such a model cannot be captured by ``torch.export`` (the kept count depends on the data).

    On a feature map (C, H, W) every position attends to every position and the output is a map
    again; the queries and the keys/values then have their own projections (``q``, ``kv``), and
    ``kv_reduction: r`` computes the keys and values with an r×r convolution of stride r, so the
    attention runs over (H/r)·(W/r) keys (Twins' global sub-sampled attention, ScalableViT's
    scalable self-attention, PVT's spatial reduction without its norm). Tokens that carry a patch
    grid and no special tokens take ``kv_reduction`` and ``value_conv`` too, through their map.
    """

    block = "global-attn"
    takes = ("tokens", "packed", "image")
    family = "attention"

    over: Literal["tokens", "channels", "groups"] = Field(
        "tokens", description="tokens: tokens attend to tokens; channels: cross-covariance attention (XCiT) — "
                              "within each head, channels attend to channels through the l2-normalised "
                              "queries and keys, with a learned per-head temperature (used as exp(t)); "
                              "groups: each token attends to the tokens at its own position in every group "
                              "(ViViT's temporal attention across frames).")
    samples: PositiveInt | None = Field(
        None, description="Adaptive token sampling: when more than this many tokens follow the class token, "
                          "keep the class token and the distinct tokens of this many Gumbel-max draws.")

    @model_validator(mode="after")
    def _options_that_combine(self):
        extras = [f for f in ("head_mix", "memories", "task_tokens", "temperature", "mask_self", "qk_norm", "scale")
                  if getattr(self, f) != type(self).model_fields[f].default]
        if self.over == "channels" and extras:
            raise ValueError("cross-covariance attention (over: channels) has its own per-head temperature and "
                             f"takes no {', '.join(extras)}")
        if self.samples is not None and (extras or self.over != "tokens"):
            raise ValueError("token sampling (samples) scores plain softmax attention; it takes no "
                             + ", ".join(extras + ([f"over: {self.over}"] if self.over != "tokens" else [])))
        if self.over == "groups" and (self.memories or self.task_tokens):
            raise ValueError("attention across groups (over: groups) takes no memories or task_tokens")
        return self

    kv_reduction: PositiveInt = Field(
        1, description="Sub-sample the keys and values: an r×r convolution with stride r (no padding) computes "
                       "them from the map, so attention runs over (H/r)·(W/r) keys; r must divide the map.")
    dim_value: PositiveInt | None = Field(None, description=DIM_VALUE)
    value_conv: PositiveInt | None = Field(None, description=VALUE_CONV + " Needs a feature map, or tokens that "
                                           "carry a grid.")

    @model_validator(mode="after")
    def _map_options(self):
        check_value_conv(self.value_conv)
        if self.value_conv is not None and self.kv_reduction > 1:
            raise ValueError("value_conv adds a convolution of the values at every position, but kv_reduction "
                             f"{self.kv_reduction} sub-samples them: use one of the two")
        if self.over == "channels" and (self.kv_reduction > 1 or self.value_conv or self.dim_value):
            raise ValueError("cross-covariance attention (over: channels) takes no kv_reduction, value_conv or "
                             "dim_value")
        if (self.kv_reduction > 1 or self.value_conv or self.dim_value) and (self.samples or self.over == "groups"):
            raise ValueError("token sampling and attention across groups take no kv_reduction, value_conv or "
                             "dim_value")
        if (self.kv_reduction > 1 or self.value_conv) and (self.memories or self.task_tokens or self.mask_self):
            raise ValueError("kv_reduction and value_conv run on the map of positions, which has no memories, "
                             "task tokens or self-mask")
        return self

    def on_map(self, x: Shape) -> bool:
        """Whether the block runs on the map of positions (a feature map, or grid tokens that need it)."""
        return x.kind == "image" or self.kv_reduction > 1 or self.value_conv is not None

    def map_size(self, x: Shape) -> tuple[int, int]:
        """(height, width) of the map the block attends over, checking that it takes the options."""
        if x.kind == "image":
            what = {"channels": "cross-covariance attention (over: channels)",
                    "groups": "attention across groups (over: groups)"}.get(self.over, "token sampling (samples)")
            need(self.over == "tokens" and self.samples is None, f"{what} takes tokens, but a feature map reaches it",
                 "patchify the map first")
            need(not self.memories, "memories are extra tokens, but a feature map reaches global-attn",
                 "patchify the map first, or drop memories")
            h, w = x.dims[1:]
        else:
            what = "kv_reduction" if self.kv_reduction > 1 else "value_conv"
            need(x.grid is not None and len(x.grid) == 2, f"{what} needs the tokens' 2-D patch grid, but these "
                 "carry none", "place the block where the tokens still carry their grid (after patchify)")
            need(x.prefix == 0 and x.suffix == 0, f"{what} works on the patch grid, but {x.prefix + x.suffix} "
                 "special token(s) are in the sequence", "add the tokens block after this block")
            (h, w), n = x.grid, x.dims[0]
            need(n == h * w, f"{n} tokens do not fill the {h}×{w} patch grid")
        r = self.kv_reduction
        need_fit(h, w, r, f"kv_reduction {r} does not divide", "kv reductions")
        return h, w


    def data_dependent(self) -> bool:
        return self.samples is not None

    def takes_padding(self) -> str | None:
        return "keep" if self.over == "tokens" else None  # the token path masks padded keys

    def samples_tokens(self, x: Shape) -> bool:
        return self.samples is not None and x.dims[0] - 1 > self.samples

    def infer(self, x: Shape) -> Shape:
        self.geometry(x.features)
        if x.kind == "packed":
            need(self.over == "tokens" and not (self.memories or self.task_tokens or self.samples or self.dim_value
                                                or self.kv_reduction > 1 or self.value_conv),
                 "on packed tokens global-attn attends within each image and takes no memories, task_tokens, "
                 "samples, dim_value, kv_reduction, value_conv or over: channels|groups",
                 "remove those options, or attend over unpacked tokens")
            return x
        if self.on_map(x):
            self.map_size(x)
        need(self.task_tokens <= x.prefix, f"task_tokens {self.task_tokens} is more than the {x.prefix} special "
             "token(s) leading the sequence", "add the task tokens with a tokens block before the stack")
        if self.over == "groups":
            need(x.groups > 1, "over: groups attends across groups, but these tokens hold none",
                 "make groups first (patchify on a volume with frames: groups)")
        if self.samples is None:
            return x
        need(x.prefix >= 1, "token sampling scores tokens by the class token's attention, but no class "
                            "token leads the sequence", "add '- tokens: {cls: 1}' before it")
        need(x.suffix == 0, f"token sampling keeps a subset of the tokens after the class token, but {x.suffix} "
             "special token(s) trail the sequence", "append the trailing tokens after token sampling")
        if not self.samples_tokens(x):
            return x
        # the kept tokens are a subset in sorted order: no grid any more, and only the class token is sure
        return Shape.tokens(self.samples + 1, x.features, prefix=1)

    def count_params(self, x: Shape) -> int:
        heads, dk = self.geometry(x.features)
        if self.over == "channels":
            return self.attention_params(x.features, heads)
        if not self.on_map(x):
            return self.attention_params(x.features)
        c, r, inner_v = x.features, self.kv_reduction, heads * self.value_width(x.features)
        kv = c * (r * r - 1) * (heads * dk + inner_v)  # the r×r kv convolution's weights beyond a 1×1's
        return self.attention_params(c, kv + value_conv_cost(self.value_conv, inner_v, 0)[0])

    def flops(self, x: Shape) -> int:
        if self.on_map(x):
            h, w = self.map_size(x)
            r, c = self.kv_reduction, x.features
            inner_v = self.geometry(c)[0] * self.value_width(c)
            return self.attention_flops(h * w, (h // r) * (w // r), c) + \
                value_conv_cost(self.value_conv, inner_v, h * w)[1]
        n, d = x.dims
        heads, dh = self.geometry(d)
        inner = heads * dh
        if self.over == "channels":  # (dh × dh) weights per head, each a product over the n tokens
            return 2 * n * d * 3 * inner + 4 * n * dh * inner + (2 * n * inner * d if self.projects_out(d) else 0)
        if self.over == "groups":  # n sequences of G tokens per sample, counted here per group
            return n * self.attention_flops(x.groups, x.groups, d) // x.groups
        if not self.samples_tokens(x):
            return self.attention_flops(n, n, d)
        kept = self.samples + 1
        flops = 2 * n * d * 3 * inner + 2 * n * n * inner  # q, k, v for all tokens; all logits
        flops += 2 * heads * (n - 1)  # class-attention scores weighed by value norms, summed over heads
        flops += 2 * kept * n * inner  # the kept rows of attention times v
        return flops + (2 * kept * inner * d if self.projects_out(d) else 0)

    def pattern(self, x: Shape) -> str:
        if x.kind == "packed":
            return "per image" + self.pattern_extras()
        if self.samples_tokens(x):
            return f"global, samples ≤{self.samples}"
        if self.over == "groups":
            return f"across {x.groups} groups" + self.pattern_extras()
        text = "cross-covariance" if self.over == "channels" else "global"
        if self.kv_reduction > 1:
            h, w = self.map_size(x)
            r = self.kv_reduction
            text += f", kv sub-sampled {r}×{r} ({h // r}×{w // r} keys)"
        if self.value_conv is not None:
            text += f" + value conv {self.value_conv}×{self.value_conv}"
        return text + self.pattern_extras()

    def part_params(self, part: str, x: Shape) -> int | None:
        return self.attention_parts(x.features).get(part)

    def build(self, x: Shape):
        from .modules import attention

        if x.kind == "packed":
            from .modules.packed import PackedAttention

            return PackedAttention(**self.attention_kwargs(x.features))
        if self.on_map(x):
            from .modules.map_attention import MapAttention

            return MapAttention(window=None, partition="block", rel_pos_bias="none", kv_reduction=self.kv_reduction,
                                value_conv=self.value_conv, grid=x.grid if x.kind == "tokens" else None,
                                **self.attention_kwargs(x.features))
        if self.samples is not None:
            from .modules.token_sampling import SamplingAttention

            return SamplingAttention(samples=self.samples, **self.attention_kwargs(x.features))
        if self.over == "groups":
            return attention.GroupAttention(x.groups, **self.attention_kwargs(x.features))
        cls = attention.CrossCovarianceAttention if self.over == "channels" else attention.Attention
        return cls(**self.attention_kwargs(x.features))


@register
class LocalAttn(AttentionSpec):
    """Self-attention within windows of a feature map.

    ``partition: block`` attends within non-overlapping w×w windows (Swin/MaxViT block attention);
    ``partition: grid`` attends within a w×w grid of tokens spread evenly over the whole map (MaxViT
    grid attention: a sparse, global mix). Takes and gives a feature map (C, H, W). The position bias
    is a learned table per head (Swin/MaxViT), or ``dynamic``: a small MLP of the offset, so it fits any
    window (CrossFormer; its short- and long-distance attention are block and grid).

    With ``region_tokens`` it takes tokens instead: one region token per window leading the patch
    tokens, as ``merge: sequence`` joins a region map in front of a patch grid (RegionViT). The region
    tokens first attend among themselves (no position bias), then each window attends together with
    its region token (which gets no position bias either); both steps use this block's weights. The
    windows are the patch grid divided by the region grid.
    """

    block = "local-attn"
    takes = ("image", "tokens")
    family = "attention"

    partition: Literal["block", "grid"] = Field("block", description="block: contiguous windows; "
                                                "grid: dilated windows that span the whole map.")
    window: PositiveInt | None = Field(7, description="Window side w: attention runs over w×w tokens; "
                                       "none: one window, the whole map (ScalableViT's window None).")
    dim_head: PositiveInt | None = Field(32, description="Width of one head. When unset: width / heads.")
    rel_pos_bias: Literal["table", "dynamic", "none"] = Field(
        "table", description="Relative position bias added to the logits: table = a learned (2w-1)² × heads "
                             "table (Swin/MaxViT); dynamic = an MLP of the offset (Δrow, Δcol) → one bias shared "
                             "by all heads (CrossFormer's dynamic position bias: Linear(2→m), then three times "
                             "LayerNorm → ReLU → Linear, the last to 1; m = bias_hidden); none.")
    windows: PositiveInt | None = Field(None, description="Instead of window: the number of windows along each "
                                        "side, so a window covers (height/n)×(width/n) tokens whatever the map "
                                        "size (NesT's nested blocks; with partition: grid, tokens n apart).")
    bias_hidden: PositiveInt | None = Field(None, description="rel_pos_bias: dynamic — width of the bias MLP; "
                                            "width // 4 when unset (CrossFormer).")
    bias_index: Literal["exact", "vit-pytorch"] = Field(
        "exact", description="rel_pos_bias: dynamic — exact: each query/key pair gets the MLP of its own offset; "
                             "vit-pytorch: CrossFormer's quirk in vit-pytorch, which evaluates the MLP on the "
                             "offsets [-w, w]² (row stride 2w+1) but reads it at (Δrow+w-1)·(2w-1) + (Δcol+w-1), "
                             "so most pairs get another offset's bias (needed for its weights).")
    region_tokens: bool = Field(False, description="Take tokens whose leading special tokens are one region token "
                                "per window, on their own grid (merge: sequence of a region map and a patch "
                                "grid): region tokens attend among themselves, then each window with its region "
                                "token, with shared weights (RegionViT's regional-to-local attention).")
    rel_pos_index: Literal["row-major", "col-major"] = Field(
        "row-major", description="How a relative offset indexes the bias table: row-major = "
                                 "(Δrow + h−1)·(2w−1) + (Δcol + w−1); col-major = (Δrow + h−1) + (Δcol + w−1)·(2h−1) "
                                 "(RegionViT's transposed index).")
    dim_value: PositiveInt | None = Field(None, description=DIM_VALUE)
    value_conv: PositiveInt | None = Field(None, description=VALUE_CONV + " It sees across window borders.")

    @model_validator(mode="after")
    def _geometry_given(self):
        if self.heads is None and self.dim_head is None:
            raise ValueError("set heads or dim_head")
        if self.memories or self.task_tokens:
            raise ValueError("memories and task_tokens are for global-attn; windows have no special tokens")
        if self.windows is not None and "window" in self.model_fields_set:
            raise ValueError("set window (the window side) or windows (how many per side), not both")
        if self.rel_pos_bias != "dynamic" and {"bias_hidden", "bias_index"} & self.model_fields_set:
            raise ValueError("bias_hidden and bias_index are options of the dynamic bias: set rel_pos_bias: dynamic")
        if self.region_tokens and (self.partition != "block" or self.windows is not None):
            raise ValueError("with region_tokens the region grid sets the windows: partition block, no windows")
        check_value_conv(self.value_conv)
        if self.value_conv is not None and (self.rel_pos_bias == "dynamic" or self.region_tokens
                                            or self.rel_pos_index != "row-major"):
            raise ValueError("value_conv takes the table bias or none, in row-major order, and no region_tokens")
        return self

    def regions(self, x: Shape) -> tuple[tuple[int, int], tuple[int, int]]:
        """(region grid, window size) of tokens led by region tokens, checking that they fit each other."""
        need(self.region_tokens, "local-attn takes tokens only with region_tokens: true (region tokens leading a "
             "patch grid)", "give it a feature map, or join region tokens in front with 'merge: sequence'")
        need(x.grid is not None and len(x.grid) == 2, "local-attn with region_tokens needs tokens on a 2-D patch "
             "grid, but these carry none", "join a region map in front of a patch grid with 'merge: sequence'")
        need(x.prefix_grid is not None and len(x.prefix_grid) == 2 and x.prefix >= 1,
             f"local-attn with region_tokens needs region tokens on a 2-D grid leading the sequence, but the "
             f"{x.prefix} special token(s) here carry no grid",
             "join the region map in front with 'merge: sequence' (from: [region, local])")
        need(x.suffix == 0, f"local-attn with region_tokens works on the patch grid, but {x.suffix} special "
             "token(s) trail the sequence")
        (rh, rw), (h, w) = x.prefix_grid, x.grid
        need(h % rh == 0 and w % rw == 0,
             f"the {rh}×{rw} region tokens do not split the {h}×{w} patch grid into windows "
             f"(the {'height' if h % rh else 'width'} {h if h % rh else w} is no multiple of {rh if h % rh else rw})",
             window_hint(h, w, "region grids"))
        win = (h // rh, w // rw)
        if "window" in self.model_fields_set:
            need(win == (self.window, self.window),
                 f"the {rh}×{rw} region tokens split the {h}×{w} patch grid into {win[0]}×{win[1]} windows, "
                 f"not the {self.window}×{self.window} windows that window: {self.window} says",
                 f"set window: {win[0]} (or leave it out)" + (
                     f", or give the region tokens a {h // self.window}×{w // self.window} grid"
                     if h % self.window == 0 and w % self.window == 0 else "") + "; " + window_hint(h, w))
        return (rh, rw), win

    def window_size(self, x: Shape) -> tuple[int, int]:
        """(window height, window width) on this map, checking that the windows tile it."""
        if x.kind == "tokens" or self.region_tokens:
            need(x.kind == "tokens", "local-attn with region_tokens takes tokens, but a feature map reaches it",
                 "join the region map in front of the patch tokens with 'merge: sequence'")
            return self.regions(x)[1]
        return self.map_window_size(x)

    def map_window_size(self, x: Shape) -> tuple[int, int]:
        """(window height, window width) on a feature map, checking that the windows tile it."""
        _, h, w = x.dims
        if self.windows is None:
            win = self.window
            if win is None:
                return h, w
            need_fit(h, w, win, f"window {win} does not divide", "windows")
            return win, win
        need_fit(h, w, self.windows, f"{self.windows} windows per side do not tile", "window counts")
        return h // self.windows, w // self.windows

    def infer(self, x: Shape) -> Shape:
        self.window_size(x)
        self.geometry(x.features)
        if self.rel_pos_bias == "dynamic":
            self.bias_width(x.features)
        return x

    def bias_width(self, dim: int) -> int:
        hidden = self.bias_hidden if self.bias_hidden is not None else dim // 4
        need(hidden > 0, f"the dynamic bias MLP of a width-{dim} map would have width {dim} // 4 = 0",
             "set bias_hidden")
        return hidden

    def bias_offsets(self, x: Shape) -> int:
        """How many offsets the dynamic bias MLP is evaluated on."""
        wh, ww = self.window_size(x)
        return (2 * wh + 1) * (2 * ww + 1) if self.bias_index == "vit-pytorch" else (2 * wh - 1) * (2 * ww - 1)

    def value_conv_cost(self, x: Shape) -> tuple[int, int]:
        if self.value_conv is None:
            return 0, 0
        c, h, w = x.dims
        return value_conv_cost(self.value_conv, self.geometry(c)[0] * self.value_width(c), h * w)

    def count_params(self, x: Shape) -> int:
        heads, _ = self.geometry(x.features)
        wh, ww = self.window_size(x)
        bias = 0
        if self.rel_pos_bias == "table":
            bias = (2 * wh - 1) * (2 * ww - 1) * heads
        elif self.rel_pos_bias == "dynamic":  # Linear(2→m), 3 × [LayerNorm, Linear], the last m→1
            m = self.bias_width(x.features)
            bias = linear_params(2, m) + 3 * 2 * m + 2 * linear_params(m, m) + linear_params(m, 1)
        return self.attention_params(x.features, bias + self.value_conv_cost(x)[0])

    def part_params(self, part: str, x: Shape) -> int | None:
        if part == "rel_pos_bias" and self.rel_pos_bias == "table":
            wh, ww = self.window_size(x)
            return (2 * wh - 1) * (2 * ww - 1) * self.geometry(x.features)[0]
        return self.attention_parts(x.features).get(part)

    def flops(self, x: Shape) -> int:
        wh, ww = self.window_size(x)
        if x.kind == "tokens":  # region tokens among themselves, then each window with its region token
            regions, c = x.prefix, x.features
            n = (self.attention_flops(regions, regions, c)
                 + self.attention_flops(regions * (1 + wh * ww), 1 + wh * ww, c))
        else:
            c, h, w = x.dims
            n = self.attention_flops(h * w, wh * ww, c) + self.value_conv_cost(x)[1]
        if self.rel_pos_bias == "dynamic":  # the bias MLP, once per forward
            m = self.bias_width(c)
            n += 2 * self.bias_offsets(x) * (2 * m + 2 * m * m + m)
        return n

    def pattern(self, x: Shape) -> str:
        kind = "window" if self.partition == "block" else "grid"
        wh, ww = self.window_size(x)
        bias = ""
        if self.rel_pos_bias == "dynamic":
            bias = ", dynamic bias" + (" (vit-pytorch index)" if self.bias_index == "vit-pytorch" else "")
        if x.kind == "tokens":
            return (f"regional {wh}×{ww} + {x.prefix} region token{'s' if x.prefix > 1 else ''}" + bias
                    + self.pattern_extras())
        text = f"{kind} {wh}×{ww}" + (" (whole map)" if self.window is None and self.windows is None else "")
        if self.value_conv is not None:
            text += f" + value conv {self.value_conv}×{self.value_conv}"
        return text + bias + self.pattern_extras()

    def build(self, x: Shape):
        from .modules.attention import LocalAttention, RegionalAttention

        dynamic = self.rel_pos_bias == "dynamic"
        bias = dict(rel_pos_bias=self.rel_pos_bias, rel_pos_index=self.rel_pos_index,
                    bias_hidden=self.bias_width(x.features) if dynamic else None, bias_index=self.bias_index)
        if self.value_conv is not None:
            # The value conv needs the values as one map, so project first and then cut windows;
            # LocalAttention cuts the input once instead, which is faster when nothing needs the map.
            from .modules.map_attention import MapAttention

            return MapAttention(window=self.window_size(x), partition=self.partition, rel_pos_bias=self.rel_pos_bias,
                                kv_reduction=1, value_conv=self.value_conv, grid=None,
                                **self.attention_kwargs(x.features))
        if x.kind == "tokens":
            return RegionalAttention(regions=self.regions(x)[0], window=self.window_size(x), **bias,
                                     **self.attention_kwargs(x.features))
        return LocalAttention(partition=self.partition, window=self.window_size(x), **bias,
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
