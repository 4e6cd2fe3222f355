"""What a timm model name stands for in the zoo (its own module, so family modules need not import the API)."""
from __future__ import annotations

from typing import Any, Mapping, NamedTuple


class Target(NamedTuple):
    """A timm model as the zoo builds it: a blueprint, its variant and parameter overrides on top."""

    blueprint: str
    variant: str | None = None
    overrides: Mapping[str, Any] = {}
