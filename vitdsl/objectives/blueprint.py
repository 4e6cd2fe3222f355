"""The objective blueprint: the document kind marked by an ``objective:`` key (see ``spec`` for the format).
Importing this module registers the kind with the loader and installs what checking, compiling and
tracing one means."""
from __future__ import annotations

from typing import Any, ClassVar, Mapping

from pydantic import Field, field_validator

from ..blueprint.kinds import BlueprintBase, register_kind
from ..errors import safe_text
from .spec import REGISTRY, EncoderRef, Part


class ObjectiveOperations:
    """See ``vitdsl.blueprint.kinds.Operations``; torch is imported only by compile and trace."""

    def check(self, bp: "ObjectiveBlueprint"):
        return bp.resolve()

    def compile(self, checked, device: Any, check_memory: bool, **kwargs: Any):
        from ..graph.budget import check_fits
        from .module import compile_objective

        if check_memory:
            check_fits([checked.encoder, *checked.parts.values()], device)

        return compile_objective(checked, device=device, **kwargs)

    def trace(self, bp: "ObjectiveBlueprint", batch: int):
        from .summary import trace_objective

        return trace_objective(bp.resolve(), batch)

    def report(self, bp: "ObjectiveBlueprint", checked) -> list[str]:
        from ..graph.build import info

        enc = checked.encoder
        lines = [f"objective '{bp.kind}' around '{safe_text(enc.design.blueprint.name)}' ({enc.input} → {enc.output})"]
        lines += [f"  {role}: {path}" for role, path in checked.roles.described()]
        for name, g in checked.parts.items():
            lines.append(f"  part {name}: switched off" if g is None else
                         f"  part {name}: {g.input} → {g.output}, {info(g)['params']:,} params")
        return lines


@register_kind("objective")
class ObjectiveBlueprint(BlueprintBase):
    """A training objective (MAE, DINO, distillation, …) around an encoder blueprint."""

    encoder: str | EncoderRef = Field(description="The network being trained: a zoo name or path, or "
                                      "{blueprint, variant, set, replace}.")
    objective: dict[str, Any] = Field(description="One objective kind and its settings, e.g. "
                                      "{mae: {masking_ratio: 0.75}}.")
    parts: dict[str, Part] = Field(default_factory=dict, description="The objective's own networks, by name.")

    order: ClassVar[tuple[str, ...]] = ("name", "description", "paper", "reference", "encoder", "objective",
                                        "params", "variants", "parts")
    operations: ClassVar[ObjectiveOperations] = ObjectiveOperations()

    @field_validator("objective")
    @classmethod
    def _one_kind(cls, v):
        if len(v) != 1:
            raise ValueError(f"name exactly one objective, e.g. objective: {{mae: {{masking_ratio: 0.75}}}}; "
                             f"the objectives: {', '.join(sorted(REGISTRY))}")
        return v

    @property
    def kind(self) -> str:
        return next(iter(self.objective))

    def configured(self, variant: str | None = None, overrides: Mapping[str, Any] | None = None,
                   replace: Mapping[str, Any] | None = None) -> "ObjectiveBlueprint":
        from .design import apply

        return apply(self, variant, overrides, replace)

    def resolve(self, variant: str | None = None, overrides: Mapping[str, Any] | None = None):
        """Pick a variant, apply overrides, check encoder, objective and parts: an ObjectiveDesign."""
        from ..blueprint.confine import within
        from .design import resolve

        with within(self._roots):  # the encoder and teacher it names come from the folders it was loaded with
            return resolve(self, variant, overrides)

    def as_network(self, refuse) -> BlueprintBase:
        raise refuse(f"'{self.name}' is an objective")

