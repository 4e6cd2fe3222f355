"""Move trained weights from one model into another blueprint: every tensor whose path and shape match.

The counterpart of vit-pytorch's ``to_vit()`` (a distillable student back to a plain ViT) for any pair
of blueprints that share layer names: the target must be filled completely, and what the source had
beyond it (a distillation token and head) is reported, not silently lost.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, NamedTuple

import torch
from torch import nn

from ..errors import VitdslError


class Transplanted(NamedTuple):
    model: nn.Module
    left_behind: list[str]  # source tensors with no place in the target


def transplant(model: nn.Module, target: Any, variant: str | None = None,
               overrides: Mapping[str, Any] | None = None, *, plan: bool = False, show: Any = True) -> Transplanted:
    """Copy ``model``'s tensors into ``target`` (a blueprint, path or zoo name, built here; or a module,
    filled in place) wherever a state_dict key and shape match; every target tensor must be filled.

    With ``plan`` the target may differ (other image size, classes, depth): the transplant planner of
    ``pretrained`` resamples position tables, re-initialises what the source cannot fill and drops what
    has no place, after printing its per-tensor plan (``show``: True, a rich Console, or False)."""
    from ..blueprint.kinds import BlueprintBase
    from ..blueprint.load import load

    if isinstance(target, (str, Path, BlueprintBase)):
        target = load(target, variant, overrides).build()
    elif variant is not None or overrides:
        raise VitdslError("variant and overrides apply to a blueprint target, not to a built module",
                          hint="build the target with them first, or pass the blueprint")
    if plan:
        from .pretrained import apply, make_plan, show_plan

        made = make_plan(target, model.state_dict())
        show_plan(made, show)
        apply(target, made)
        return Transplanted(target, [s.reference for s in made.steps if s.action == "dropped"])
    source, dest = model.state_dict(), target.state_dict()
    missing, misfit = [], []
    for key, t in dest.items():
        if key not in source:
            missing.append(key)
        elif source[key].shape != t.shape:
            misfit.append(f"{key} {tuple(source[key].shape)} → {tuple(t.shape)}")
    if missing or misfit:
        listing = "; ".join([*(f"no source for {k}" for k in missing[:8]), *misfit[:8]])
        more = len(missing) + len(misfit) - min(len(missing), 8) - min(len(misfit), 8)
        raise VitdslError(f"cannot fill the target from the source: {listing}"
                          + (f" (and {more} more)" if more else ""),
                          hint="transplant needs layers of the same names and sizes: name the target's layers "
                               "as the source's, and build it with the same parameters")
    with torch.no_grad():
        target.load_state_dict({k: source[k] for k in dest}, strict=True)
    return Transplanted(target, [k for k in source if k not in dest])
