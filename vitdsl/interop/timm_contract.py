"""What verify, pretrained files and the CLI need of ``vitdsl.interop.timm``, in one place.

That package (``build``, ``names``, ``target``, ``import_weights`` and, per family, key-rewrite rules in
the language of ``transfer.py``) is optional here: everything else works without it, and asking for a
timm model without it is one clear error.
"""
from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

from ..errors import VitdslError


def timm_interop() -> ModuleType:
    """``vitdsl.interop.timm``, or an error saying it is not there."""
    try:
        return importlib.import_module("vitdsl.interop.timm")
    except ModuleNotFoundError as e:
        if e.name not in ("vitdsl.interop.timm", "timm"):
            raise
        what = "timm" if e.name == "timm" else "vitdsl.interop.timm"
        raise VitdslError(f"timm models need {what}, which is not installed",
                          hint="pip install timm" if what == "timm" else
                          "this vitdsl has no timm importer yet; --against vit-pytorch:CLASS works") from None


def timm_rules(name: str) -> tuple[list, dict[str, str]] | None:
    """The key-rewrite rules and ordinals from timm model ``name``'s keys onto its blueprint, when the
    importer exposes them (``rules(name)``); None when it only offers ``import_weights``."""
    vt = timm_interop()
    rules = getattr(vt, "rules", None)
    return None if rules is None else rules(name)


def timm_rules_for(model: Any) -> tuple[list, dict[str, str]] | None:
    """timm's key rules for a built model's blueprint family (``rules_for(model)``), or None when there
    is no importer, it has no such function, or the family has no timm map: ``--keys auto`` then does
    not consider timm."""
    try:
        vt = timm_interop()
    except VitdslError:
        return None
    rules_for = getattr(vt, "rules_for", None)
    return None if rules_for is None else rules_for(model)


def timm_reference(name: str) -> Any:
    """A fresh timm model ``name`` (random weights, nothing downloaded)."""
    vt = timm_interop()
    make = getattr(vt, "reference", None)
    if make is not None:
        return make(name)
    try:
        import timm
    except ImportError as e:
        missing = getattr(e, "name", None) or "timm"  # timm itself, or what it imports (torchvision)
        raise VitdslError(f"cannot import timm: {e}", hint=f"pip install {missing}") from None
    try:
        return timm.create_model(name, pretrained=False)
    except RuntimeError as e:
        raise VitdslError(f"timm has no model '{name}': {e}", hint="'timm.list_models()' lists them") from None
