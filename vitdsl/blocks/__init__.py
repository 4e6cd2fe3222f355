"""The block library: one pydantic spec per block (this package, no torch) and its module
(``vitdsl.blocks.modules``, torch). A block's spec module is imported, and registers its blocks, when the
block is first looked up in ``REGISTRY`` (see ``vitdsl.blocks.registry``); listing the registry imports them all."""
from .base import REGISTRY, BlockSpec, MixerSpec, lookup, register
from .shape import Shape

__all__ = ["REGISTRY", "BlockSpec", "MixerSpec", "Shape", "lookup", "register"]
