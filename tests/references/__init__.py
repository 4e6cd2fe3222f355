"""The vit-pytorch README examples that the zoo reproduces, one module per zoo family.

Each module lists ``CASES``: a blueprint (and variant), the reference constructor with the README's
arguments, the exact parameter count, and how to call both sides when a plain ``model(x)`` is not
enough (extra outputs, randomness shared through a seed).
"""
from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, field
from typing import Any, Callable

import torch


@dataclass
class Case:
    blueprint: str
    make: Callable[[], torch.nn.Module]
    params: int | None  # the README's figure; None for extra cases (then: equal to the reference's)
    variant: str | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    # the compatibility overlay, where it is not the variant's own: a paper-size variant is clean, so a case
    # that builds vit-pytorch at the paper's sizes asks for vit-pytorch's overlay
    compat: str | None = None
    # Calls a model on an input. The default is model(x); a case may pass extra arguments or pick outputs.
    call_reference: Callable[[torch.nn.Module, torch.Tensor], Any] | None = None
    call_ours: Callable[[torch.nn.Module, torch.Tensor], Any] | None = None
    seed: int | None = None  # reseed before each forward: the reference is random in eval mode
    batch: int = 2

    @property
    def id(self) -> str:
        return self.blueprint + (f"[{self.variant}]" if self.variant else "") + \
            "".join(f",{k}={v}" for k, v in self.overrides.items())

    def forward(self, model: torch.nn.Module, x: torch.Tensor, ours: bool) -> Any:
        if self.seed is not None:
            torch.manual_seed(self.seed)
        call = self.call_ours if ours else self.call_reference
        with torch.no_grad():
            return call(model, x) if call else model(x)


def readme(blueprint: str, params: int | None, variant: str | None = None, overrides: dict | None = None,
           **kw) -> Case:
    """The case of an entry of vitdsl.interop.readme (the table 'vitdsl verify' uses too)."""
    from vitdsl.interop.readme import ENTRIES

    entry = next(e for e in ENTRIES if (e.blueprint, e.variant, e.overrides) == (blueprint, variant, overrides or {}))
    return Case(blueprint, entry.make, params, variant=variant, overrides=dict(entry.overrides), compat=entry.compat,
                **kw)


def _collect() -> list[Case]:
    cases = []
    for info in pkgutil.iter_modules(__path__):
        cases += importlib.import_module(f"{__name__}.{info.name}").CASES
    return cases


CASES: list[Case] = _collect()
BY_ID = {c.id: c for c in CASES}
