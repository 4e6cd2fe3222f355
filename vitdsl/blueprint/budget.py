"""``budget:`` in a blueprint: the most parameters and compute a design may have, checked by ``validate`` and
``build`` from the shape rules (no weights), so a design that grew past its target fails at once, with the
stage that grew."""
from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

SUFFIXES = {"": 1, "K": 10**3, "M": 10**6, "G": 10**9, "B": 10**9, "T": 10**12}
COUNT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGBT]?)\s*$", re.IGNORECASE)


def count(value: Any) -> int:
    """A count written as a number or with a suffix: 30M, 1.5B, 300K (B and G are both 10⁹)."""
    if isinstance(value, bool):
        raise ValueError("takes a number, e.g. 30M or 30000000")
    if isinstance(value, (int, float)):
        number, scale = value, 1
    elif isinstance(value, str) and (m := COUNT.match(value)):
        number, scale = float(m[1]), SUFFIXES[m[2].upper()]
    else:
        raise ValueError(f"takes a number such as 30M, 1.5B or 30000000, not {value!r}")
    if number <= 0 or number * scale >= 2**63:
        raise ValueError(f"must be a positive count below 2**63, not {value!r}")
    return int(number * scale)


class Budget(BaseModel):
    """Limits on the design, each optional. FLOPs are counted as vitdsl counts them everywhere (a multiply-add
    is 2 FLOPs; papers and timm often quote multiply-adds as "FLOPs": give ``gmacs_max`` for those)."""

    model_config = ConfigDict(extra="forbid")

    params_max: int | None = Field(None, description="Most parameters, e.g. 30M (K, M, G/B, T suffixes).")
    gflops_max: float | None = Field(None, gt=0, description="Most GFLOPs for one input (2 per multiply-add).")
    gmacs_max: float | None = Field(None, gt=0, description="Most giga multiply-adds for one input (FLOPs / 2).")
    at: int | tuple[int, int] | None = Field(
        None, description="Image size the FLOPs are counted at (H, or [H, W]), when not the blueprint's input: "
                          "the layers are checked again at that size.")

    @field_validator("params_max", mode="before")
    @classmethod
    def _count(cls, v: Any) -> Any:
        return None if v is None else count(v)

    @field_validator("at")
    @classmethod
    def _positive(cls, v: Any) -> Any:
        sizes = (v,) if isinstance(v, int) else v or ()
        if any(s <= 0 for s in sizes):
            raise ValueError("sizes must be positive")
        return v
