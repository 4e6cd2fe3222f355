"""DINOv2 with registers (Darcet et al., 2024) as timm's ``vision_transformer.py`` registers it: every
``vit_*_patch14_reg4_dinov2`` model at its default 518×518 input.

timm keeps the class token (``cls_token``) and the registers (``reg_token``) apart and adds positions to the
patches only (``no_embed_class``); ``dinov2.yaml`` does the same, with the registers as the tokens block's
``registers`` table. The rest are ViT's keys (LayerScale as DeiT III's)."""
from __future__ import annotations

from ..transfer import Rule
from . import vit
from .target import Target

MODELS: dict[str, Target] = {
    f"vit_{size}_patch14_reg4_dinov2": Target("dinov2", size) for size in ("small", "base", "large", "giant")
}

RULES: list[Rule] = [(r"reg_token$", "tokens.registers"), *vit.RULES]
