"""Weight maps from vit-pytorch classes onto zoo blueprints, one module per zoo family.

Each module defines ``MAPS = {"vit_pytorch.module.Class": (rules, ordinals)}`` (see ``transfer.py``
for the rule language); :func:`collect` merges them, so adding a variant never edits a shared table.
"""
from __future__ import annotations

import importlib
import pkgutil

from ..transfer import Rule

Map = tuple[list[Rule], dict[str, str]]


def collect() -> dict[str, Map]:
    maps: dict[str, Map] = {}
    for info in pkgutil.iter_modules(__path__):
        module = importlib.import_module(f"{__name__}.{info.name}")
        for name, entry in getattr(module, "MAPS", {}).items():
            if name in maps:
                raise ValueError(f"two weight maps for {name}")
            maps[name] = entry
    return maps
