"""The attention family, one file per scope or mechanism: the shared core (``core``: heads, projections,
dropout, the numerics options of attention over tokens and windows), ``global-attn``, ``local-attn`` (on
``windows``), ``cross-attn``, and the forms of global attention one paper brings: ``lsa-attn``, ``memory-attn``,
``sampling-attn`` (ATS), ``channel-attn`` (XCiT), ``reduced-attn`` (Twins, ScalableViT), ``pool-attn`` (MViTv2) and
``region-attn`` (RegionViT). Specs
only: their modules are in ``vitdsl.blocks.modules.attention``, so that a blueprint validates without
importing torch. Each is imported when first asked for (``from vitdsl.blocks.attention import LocalAttn``
or a lookup of its block), so a blueprint pays only for the attention it uses."""
import importlib

_WHERE = {"AttentionSpec": "core", "ChannelAttn": "channels", "CrossAttn": "cross", "GlobalAttn": "global_attn",
          "LocalAttn": "local", "LsaAttn": "lsa", "MemoryAttn": "memory", "Numerics": "core", "PoolAttn": "pooled",
          "ReducedAttn": "reduced", "RegionAttn": "regional", "SamplingAttn": "sampling", "Windows": "windows"}
__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
