"""``memory-attn``: global attention with learned memory tokens and isolated task tokens (learnable-memory
ViT, Sandler et al., 2022)."""
from __future__ import annotations

from pydantic import Field

from ..base import need, register
from ..shape import Shape
from .core import Numerics


@register
class MemoryAttn(Numerics):
    """Global attention with learned memory tokens among the keys and values, and isolated task tokens
    (learnable-memory ViT, Sandler et al., 2022).

    The memories are appended to the keys and values of every token; the first ``task_tokens`` tokens
    attend to everything, the others only to each other: an adapter that leaves a frozen backbone's
    outputs unchanged. With no memories and no task tokens it is ``global-attn``, with the same
    weights, so one blueprint can give both the backbone and its adapter form."""

    block = "memory-attn"
    capabilities = frozenset({"attention"})
    takes = ("tokens",)
    family = "attention"
    on_padding = "keep"  # padded keys are masked, the memories stay visible

    memories: int = Field(0, ge=0, description="Learned memory tokens appended to the keys and values, not "
                          "normalised.")
    task_tokens: int = Field(0, ge=0, description="Isolate the first n tokens (new task tokens): they attend to "
                             "everything, the other tokens only to each other, so a frozen backbone's "
                             "outputs are unchanged.")

    def infer(self, x: Shape) -> Shape:
        self.geometry(x.features)
        need(self.task_tokens <= x.prefix, f"task_tokens {self.task_tokens} is more than the {x.prefix} special "
             "token(s) leading the sequence", "add the task tokens with a tokens block before the stack")
        return x

    def notes(self) -> list[str]:
        return [f"+{self.memories} memories"] if self.memories else []

    def count_params(self, x: Shape) -> int:
        return self.attention_params(x.features, self.memories * x.features)

    def flops(self, x: Shape) -> int:
        n, d = x.dims
        return self.attention_flops(n, n, d, memories=self.memories)

    def pattern(self, x: Shape) -> str:
        return "global" + self.pattern_extras()

    def part_params(self, part: str, x: Shape) -> int | None:
        return self.attention_parts(x.features).get(part)

    def build(self, x: Shape):
        from ..modules.attention import MemoryAttention

        return MemoryAttention(self.memories, self.task_tokens, **self.attention_kwargs(x.features))
