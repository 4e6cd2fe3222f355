"""PiT (Heo et al., 2021) as timm has it: ``pit_{ti,xs,s,b}_224`` and their distilled versions.

timm numbers its stages ``transformers.S`` with the pooling that opens stage S (S ≥ 1) inside it; our
pooling closes stage S - 1. The distilled models' second token has its own head (``head_dist``)."""
from __future__ import annotations

from ..transfer import Rule
from .layout import block
from .target import Target

_SIZES = ("ti", "xs", "s", "b")
_STAGES = 3

MODELS: dict[str, Target] = {
    **{f"pit_{size}_224": Target("pit", size, {}) for size in _SIZES},
    **{f"pit_{size}_distilled_224": Target("pit", size, {"distilled": True}) for size in _SIZES},
}

_BLOCK = r"transformers\.(\d+)\.blocks\.(\d+)\."
_OURS = r"stages.\1.blocks.\2."

RULES: list[Rule] = [
    (r"pos_embed$", "positions.pos"),
    (r"cls_token$", "tokens.cls"),
    (r"patch_embed\.conv\.", "conv_stem.0.conv."),
    (_BLOCK + r"attn\.qkv\.", _OURS + "attn.qkv."),
    *block(_BLOCK, _OURS),
    *((rf"transformers\.{s}\.pool\.conv\.", f"stages.{s - 1}.pool.0.downsample.depthwise.") for s in range(1, _STAGES)),
    *((rf"transformers\.{s}\.pool\.fc\.", f"stages.{s - 1}.pool.0.downsample.prefix.") for s in range(1, _STAGES)),
    (r"norm\.", "head.norm."),  # the class head's norm, shared with the distillation head
    (r"head\.", "head.fc."),
    (r"head_dist\.", "dist_head.fc."),
]
ORDINALS: dict[str, str] = {}
