"""The block library: one pydantic spec per block (this package, no torch) and its module
(``vitdsl.blocks.modules``, torch). Importing this package registers every block."""
from . import attention, conv, embed, heads, mlp, packed  # noqa: F401  (registration)
from .base import REGISTRY, BlockSpec, MixerSpec, lookup, register
from .shape import Shape

__all__ = ["REGISTRY", "BlockSpec", "MixerSpec", "Shape", "lookup", "register"]
