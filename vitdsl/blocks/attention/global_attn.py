"""``global-attn``: every token attends to every token; on packed tokens within each image, on
feature maps (or grid tokens) over the map with sub-sampled keys and values or a value convolution,
across groups (ViViT), over channels (XCiT), or sampling the tokens it keeps (ATS)."""
from __future__ import annotations

from typing import Literal

from pydantic import Field, PositiveInt, model_validator

from ..base import need, need_fit, register
from ..shape import Shape
from .core import DIM_VALUE, VALUE_CONV, Numerics, check_value_conv, value_conv_cost


@register
class GlobalAttn(Numerics):
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
    capabilities = frozenset({"attention", "context"})
    takes = ("tokens", "packed", "image")
    family = "attention"

    over: Literal["tokens", "channels", "groups"] = Field(
        "tokens", description="tokens: tokens attend to tokens; channels: cross-covariance attention (XCiT) — "
                              "within each head, channels attend to channels through the l2-normalised "
                              "queries and keys, with a learned per-head temperature (used as exp(t)); "
                              "groups: each token attends to the tokens at its own position in every group "
                              "(ViViT's temporal attention across frames).")
    memories: int = Field(0, ge=0, description="Learned memory tokens appended to the keys and values, not "
                          "normalised (learnable-memory ViT).")
    task_tokens: int = Field(0, ge=0, description="Isolate the first n tokens (new task tokens): they attend to "
                             "everything, the other tokens only to each other, so a frozen backbone's "
                             "outputs are unchanged (learnable-memory adapters).")
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


    def notes(self) -> list[str]:
        return [f"+{self.memories} memories"] if self.memories else []

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
            return self.attention_params(x.features, self.memories * x.features)
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
            return self.attention_flops(n, n, d, memories=self.memories)
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
        from ..modules import attention

        kwargs = self.attention_kwargs(x.features)
        if x.kind == "packed":
            from ..modules.packed import PackedAttention

            return PackedAttention(**kwargs)
        if self.on_map(x):
            return attention.MapAttention(window=None, partition="block", rel_pos_bias="none",
                                          kv_reduction=self.kv_reduction, value_conv=self.value_conv,
                                          grid=x.grid if x.kind == "tokens" else None, **kwargs)
        if self.samples is not None:
            from ..modules.token_sampling import SamplingAttention

            return SamplingAttention(samples=self.samples, **kwargs)
        if self.over == "groups":
            return attention.GroupAttention(x.groups, **kwargs)
        if self.over == "channels":
            return attention.CrossCovarianceAttention(**kwargs)
        return attention.TokenAttention(memories=self.memories, task_tokens=self.task_tokens, **kwargs)
