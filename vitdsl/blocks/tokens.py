"""``tokens``: learned special tokens (class, distillation, registers) joining the sequence."""
from __future__ import annotations

from typing import Literal

from pydantic import Field, NonNegativeInt, model_validator

from .base import BlockSpec, register
from .shape import Shape


@register
class Tokens(BlockSpec):
    """Prepend learned special tokens (class tokens) to the sequence, or append them (``position: last``,
    e.g. DeiT's distillation token, appended after the positions so that it gets none). ``registers`` more
    learned tokens follow the class tokens (Darcet et al., 2024, "Vision Transformers Need Registers"): they
    take part in attention but are no readout, so ``pool: cls`` (which reads the class token) leaves them
    out, as the paper discards them at the output."""

    block = "tokens"
    capabilities = frozenset({"special-tokens"})
    shorthand = "cls"
    family = "embedding"

    cls: NonNegativeInt = Field(1, description="How many learned class tokens to prepend (0: registers only, "
                                "as timm's SBB ViTs with registers and no class token).")
    init_std: float = Field(0.02, gt=0, description="Standard deviation of the normal initialisation (DeiT's).")
    position: Literal["first", "last"] = Field(
        "first", description="first: prepend (leading special tokens); last: append (trailing special tokens, "
                             "which blocks that need the patch grid refuse and 'pool: last' reads).")
    registers: NonNegativeInt = Field(0, description="How many learned register tokens to insert after the class "
                                      "tokens (DINOv2 with registers: 4), in the order cls, registers, patches; "
                                      "a table of their own ('registers'), drawn as the class tokens.")

    @model_validator(mode="after")
    def _registers_lead(self) -> "Tokens":
        if self.registers and self.position == "last":
            raise ValueError("registers follow the class tokens at the front: they take 'position: first'")
        if not self.cls and not self.registers:
            raise ValueError("a tokens block with cls: 0 adds no token: give it registers, or cls: 1")
        return self

    @property
    def count(self) -> int:
        return self.cls + self.registers

    def infer(self, x: Shape) -> Shape:
        n, d = x.dims
        if self.position == "last":
            return Shape.tokens(n + self.cls, d, grid=x.grid, prefix=x.prefix, suffix=x.suffix + self.cls)
        return Shape.tokens(n + self.count, d, grid=x.grid, prefix=x.prefix + self.count, suffix=x.suffix)

    def count_params(self, x: Shape) -> int:
        return self.count * x.features

    def pattern(self, x: Shape) -> str:
        registers = f", +{self.registers} register{'s' if self.registers > 1 else ''}" if self.registers else ""
        if not self.cls:
            return registers.removeprefix(", ")
        return f"+{self.cls} cls" + (" (last)" if self.position == "last" else "") + registers

    def build(self, x: Shape):
        from .modules.embed import ClassTokens

        return ClassTokens(self.cls, x.features, self.init_std, append=self.position == "last",
                           registers=self.registers)
