"""Weight import from lucidrains' vit-pytorch, by reference class.

The maps (``maps/``, one module per family) say how the reference's state_dict keys map onto
the zoo blueprint of that variant: prefix-rewrite rules and, where the reference numbers its layers
flat, ordinals of our nested block paths (see ``transfer.py``).
"""
from __future__ import annotations

from torch import nn

from ..errors import VitdslError
from .maps import collect
from .transfer import import_state_dict


def reference_name(reference: nn.Module) -> str:
    cls = type(reference)
    return f"{cls.__module__}.{cls.__name__}"


def import_weights(model: nn.Module, reference: nn.Module) -> dict[str, str]:
    """Copy a vit-pytorch model's weights into the compiled zoo blueprint of the same variant.

    Raises VitdslError if any tensor of either side is left unmatched or does not fit.
    Returns the key map (reference key → blueprint key).
    """
    name = reference_name(reference)
    maps = collect()
    if name not in maps:
        raise VitdslError(f"no weight map for vit-pytorch class '{name}'",
                          hint="supported: " + ", ".join(sorted(maps)))
    rules, ordinals = maps[name]
    return import_state_dict(model, reference.state_dict(), rules, ordinals, source="vit-pytorch")
