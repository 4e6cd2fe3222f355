"""The attention family, one file per scope or mechanism: the shared core (``core``: heads, projections,
dropout, the numerics options of attention over tokens and windows), ``global-attn``, ``local-attn`` (on
``windows``), ``cross-attn``, and the forms of global attention one paper brings: ``lsa-attn``, ``memory-attn``,
``sampling-attn`` (ATS), ``channel-attn`` (XCiT), ``reduced-attn`` (Twins, ScalableViT), ``pool-attn`` (MViTv2) and
``region-attn`` (RegionViT). Specs
only: their modules are in ``vitdsl.blocks.modules.attention``, so that a blueprint validates without
importing torch."""
from .channels import ChannelAttn
from .core import AttentionSpec, Numerics
from .cross import CrossAttn
from .global_attn import GlobalAttn
from .local import LocalAttn
from .lsa import LsaAttn
from .memory import MemoryAttn
from .pooled import PoolAttn
from .reduced import ReducedAttn
from .regional import RegionAttn
from .sampling import SamplingAttn
from .windows import Windows

__all__ = ["AttentionSpec", "ChannelAttn", "CrossAttn", "GlobalAttn", "LocalAttn", "LsaAttn", "MemoryAttn", "Numerics",
           "PoolAttn", "ReducedAttn", "RegionAttn", "SamplingAttn", "Windows"]
