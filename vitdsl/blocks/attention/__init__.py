"""The attention family, one file per scope: the shared core (``core``: heads, projections, dropout,
the numerics options of attention over tokens and windows), ``global-attn``, ``local-attn`` (on ``windows``) and
``cross-attn``. Specs only: their modules are in ``vitdsl.blocks.modules.attention``, so that a
blueprint validates without importing torch."""
from .core import AttentionSpec, Numerics
from .cross import CrossAttn
from .global_attn import GlobalAttn
from .local import LocalAttn
from .windows import Windows

__all__ = ["AttentionSpec", "CrossAttn", "GlobalAttn", "LocalAttn", "Numerics", "Windows"]
