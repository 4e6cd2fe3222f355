"""The summary of an objective: the encoder layers it runs, then each part, traced on the meta device."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..trace.summary import Summary, trace
from .design import ObjectiveDesign


@dataclass
class ObjectiveSummary:
    name: str
    kind: str
    encoder: Summary
    roles: list[tuple[str, str]]
    unused: list[str]  # encoder layers the objective does not run (not built)
    parts: dict[str, Summary | None] = field(default_factory=dict)
    own_params: int = 0  # the objective's own tensors (mask tokens, …)
    own: list[tuple[str, tuple[int, ...]]] = field(default_factory=list)

    @property
    def total_params(self) -> int:
        return (self.encoder.total_params + sum(s.total_params for s in self.parts.values() if s)
                + self.own_params)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "objective": self.kind, "total_params": self.total_params,
                "encoder": self.encoder.to_dict(), "roles": dict(self.roles), "not_run": self.unused,
                "parts": {k: s.to_dict() if s else None for k, s in self.parts.items()},
                "own_params": self.own_params}

    def render(self, folded: bool = True):
        """The rich renderables: the encoder's table, then each part's."""
        from .render import render

        return render(self, folded=folded)

    def __rich_console__(self, console, options):
        yield from self.render()


def trace_objective(design: ObjectiveDesign, batch: int = 1, module=None) -> ObjectiveSummary:
    from .module import compile_objective

    enc = trace(design.encoder.design.blueprint, batch=batch)
    keep = design.roles.keep
    unused = [r.path for r in enc.rows if keep and r.path not in keep]
    if keep:
        size = enc.params_bytes / max(enc.total_params, 1)  # bytes per parameter (one dtype)
        enc.rows = [r for r in enc.rows if r.path in keep]
        enc.total_params = enc.trainable_params = sum(r.params for r in enc.rows)
        enc.params_bytes = int(enc.total_params * size)
    parts = {name: trace(g.design.blueprint, batch=batch) if g is not None else None
             for name, g in design.parts.items()}
    model = module if module is not None else compile_objective(design, device="meta")
    inner = {id(p) for m in [model.encoder, *(getattr(model, n) for n in design.parts)] if m is not None
             for p in m.parameters()}
    own = [(name, tuple(p.shape)) for name, p in model.named_parameters() if id(p) not in inner
           and not name.startswith("teacher")]
    return ObjectiveSummary(design.blueprint.name, design.blueprint.kind, enc, design.roles.described(), unused,
                            parts, sum(_numel(s) for _, s in own), own)


def _numel(shape: tuple[int, ...]) -> int:
    n = 1
    for s in shape:
        n *= s
    return n
