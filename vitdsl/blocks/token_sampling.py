"""Adaptive token sampling: global attention that keeps the class token and at most ``samples``
other tokens, drawn by how much the class token attends to them; and ``token-ids``, which says which
input tokens survived.

The kept count depends on the data (distinct draws), so the token count these blocks declare is an
upper bound (``data_dependent``). Images of one batch keep different numbers of tokens: the shorter
rows are padded on the right, and the padding mask travels with the tokens to later blocks (see
``modules/token_sampling.py``).
"""
from __future__ import annotations

from pydantic import Field, PositiveInt, model_validator

from .attention import GlobalAttn
from .base import BlockSpec, need, register
from .shape import Shape

NEEDS_CLS = "add '- tokens: {cls: 1}' before it"


@register
class SamplingAttn(GlobalAttn):
    """Global self-attention that then keeps only the tokens its class token finds important
    (adaptive token sampling, vit-pytorch's ``ats_vit``).

    When more than ``samples`` tokens (padding rows included) follow the class token, each one is
    scored by the class token's attention to it times the norm of its value, summed over heads;
    ``samples`` tokens are drawn from these scores with Gumbel-max (random in eval mode too), and
    only the class token and the distinct drawn tokens — at most ``samples`` — go on: their rows of
    attention, output and residual. Images that keep fewer tokens than the batch's most are padded
    on the right; padding is masked out of this and every later ``sampling-attn``'s attention. Only
    ``sampling-attn``, per-token blocks (``mlp``, ``norm``), ``pool: cls`` and ``token-ids`` honour
    that padding: a ``global-attn`` or ``pool: mean`` after it would attend to or average the
    padding rows. The token count it gives is an upper bound (class token + ``samples``); a model
    with it cannot be captured by ``torch.export`` (the kept count is data-dependent).
    """

    block = "sampling-attn"
    takes = ("tokens",)
    family = "attention"
    data_dependent = True

    samples: PositiveInt = Field(description="Gumbel-max draws K: when more than K tokens follow the class "
                                 "token, keep the class token and the distinct drawn tokens (at most K).")

    @model_validator(mode="after")
    def _plain_attention(self):
        fancy = [f for f in ("head_mix", "memories", "task_tokens", "temperature", "mask_self", "over",
                             "kv_reduction", "dim_value", "value_conv")
                 if getattr(self, f) != type(self).model_fields[f].default]
        if fancy:
            raise ValueError(f"sampling-attn scores plain softmax attention; it takes no {', '.join(fancy)}")
        return self

    def samples_tokens(self, x: Shape) -> bool:
        return x.dims[0] - 1 > self.samples

    def infer(self, x: Shape) -> Shape:
        need(x.prefix >= 1, "'sampling-attn' scores tokens by the class token's attention, but no class "
                            "token leads the sequence", NEEDS_CLS)
        need(x.suffix == 0, f"'sampling-attn' keeps a subset of the tokens after the class token, but {x.suffix} special token(s) trail the sequence",
             "append the trailing tokens after token sampling")
        self.geometry(x.features)
        if not self.samples_tokens(x):
            return x
        # the kept tokens are a subset in sorted order: no grid any more, and only the class token is sure
        return Shape.tokens(self.samples + 1, x.features, prefix=1)

    def flops(self, x: Shape) -> int:
        n, d = x.dims
        if not self.samples_tokens(x):
            return self.attention_flops(n, n, d)
        heads, dim_head = self.geometry(d)
        inner, kept = heads * dim_head, self.samples + 1
        n_flops = 2 * n * d * 3 * inner + 2 * n * n * inner  # q, k, v for all tokens; all logits
        n_flops += 2 * heads * (n - 1)  # class-attention scores weighed by value norms, summed over heads
        n_flops += 2 * kept * n * inner  # the kept rows of attention times v
        if self.projects_out(d):
            n_flops += 2 * kept * inner * d
        return n_flops

    def pattern(self, x: Shape) -> str:
        return f"global, samples ≤{self.samples}" if self.samples_tokens(x) else "global"

    def build(self, x: Shape):
        from .modules.token_sampling import SamplingAttention

        return SamplingAttention(samples=self.samples, **self.attention_kwargs(x.features))


@register
class TokenIds(BlockSpec):
    """Which tokens are left after token sampling: for each token after the leading special tokens,
    the index it had among the non-special tokens before the first ``sampling-attn`` (with a single
    class token: its patch index), or −1 on padding. Gives integers (B, ≤N − prefix): an output of
    the network (``output: [head, token_ids]``), not features for later blocks."""

    block = "token-ids"
    takes = ("tokens",)
    family = "misc"

    def infer(self, x: Shape) -> Shape:
        need(x.dims[0] > x.prefix, f"'token-ids' has no tokens after the {x.prefix} special token(s)")
        return Shape.vector(x.dims[0] - x.prefix)

    def build(self, x: Shape):
        from .modules.token_sampling import TokenIds

        return TokenIds(x.prefix)
