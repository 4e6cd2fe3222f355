"""The block library: one pydantic spec per block (this package, no torch) and its module
(``vitdsl.blocks.modules``, torch). Importing this package registers every block."""
import importlib
import pkgutil

from .base import REGISTRY, BlockSpec, MixerSpec, lookup, register
from .shape import Shape

for _info in pkgutil.iter_modules(__path__):  # every spec module or family registers its blocks on import
    if _info.name not in ("base", "shape", "modules"):
        importlib.import_module(f"{__name__}.{_info.name}")

__all__ = ["REGISTRY", "BlockSpec", "MixerSpec", "Shape", "lookup", "register"]
