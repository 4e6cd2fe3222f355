"""``sampling-attn``: global attention that keeps a sample of its tokens (adaptive token sampling, ATS)."""
from __future__ import annotations

from pydantic import Field, PositiveInt

from ..base import need, register
from ..shape import Shape
from .core import AttentionSpec


@register
class SamplingAttn(AttentionSpec):
    """Global attention that then keeps the class token and a sample of the other tokens (adaptive token
    sampling, Fayyaz et al., 2022; vit-pytorch's ``ats_vit``).

    When more than ``samples`` tokens follow the class token, each is scored by the class token's
    attention to it times the norm of its value, summed over heads; ``samples`` tokens are drawn from
    these scores with Gumbel-max (random in eval mode too), and only the class token and the distinct
    drawn tokens go on.

    Images that keep fewer tokens than the batch's most are padded on the right; the padding is
    masked out of every later attention (``global-attn``, ``memory-attn``, ``sampling-attn``), and
    honoured by per-token blocks (``mlp``, ``norm``), ``pool``, ``token-merge`` and ``token-ids``. The
    token count it gives is an upper bound: eager runs keep as many as the batch's widest image, while
    ``torch.compile``, ``torch.export`` and the ONNX exporter keep the budget, ``samples`` tokens after the
    class token (for the same draws the same logits; ``token-ids`` then ends in −1 columns). The scores
    read plain softmax attention, so the block takes none of the logit options of ``global-attn``.
    """

    block = "sampling-attn"
    capabilities = frozenset({"attention"})
    takes = ("tokens",)
    family = "attention"
    on_padding = "keep"

    samples: PositiveInt = Field(description="When more than this many tokens follow the class token, keep the "
                                 "class token and the distinct tokens of this many Gumbel-max draws.")

    def data_dependent(self) -> bool:
        return True

    def samples_tokens(self, x: Shape) -> bool:
        return x.dims[0] - 1 > self.samples

    def infer(self, x: Shape) -> Shape:
        self.geometry(x.features)
        need(x.prefix >= 1, "token sampling scores tokens by the class token's attention, but no class "
                            "token leads the sequence", "add '- tokens: {cls: 1}' before it")
        need(x.suffix == 0, f"token sampling keeps a subset of the tokens after the class token, but {x.suffix} "
             "special token(s) trail the sequence", "append the trailing tokens after token sampling")
        if not self.samples_tokens(x):
            return x
        # the kept tokens are a subset in sorted order: no grid any more, and only the class token is sure
        return Shape.tokens(self.samples + 1, x.features, prefix=1)

    def count_params(self, x: Shape) -> int:
        return self.attention_params(x.features)

    def flops(self, x: Shape) -> int:
        n, d = x.dims
        if not self.samples_tokens(x):
            return self.attention_flops(n, n, d)
        heads, dh = self.geometry(d)
        inner, kept = heads * dh, self.samples + 1
        flops = 2 * n * d * 3 * inner + 2 * n * n * inner  # q, k, v for all tokens; all logits
        flops += 2 * heads * (n - 1)  # class-attention scores weighed by value norms, summed over heads
        flops += 2 * kept * n * inner  # the kept rows of attention times v
        return flops + (2 * kept * inner * d if self.projects_out(d) else 0)

    def pattern(self, x: Shape) -> str:
        return f"global, samples ≤{self.samples}" if self.samples_tokens(x) else "global"

    def part_params(self, part: str, x: Shape) -> int | None:
        return self.attention_parts(x.features).get(part)

    def build(self, x: Shape):
        from ..modules.attention import SamplingAttention

        return SamplingAttention(samples=self.samples, **self.attention_kwargs(x.features))
