"""NesT (Zhang et al., 2022) as timm has it: ``nest_{tiny,small,base}`` and the ``_jx`` models, the same
networks with the JAX code's TensorFlow SAME max-pool between levels (0 before, 1 after on an even map,
not 1 on each side), which its converted weights need.

timm's level L holds the aggregation that opens it (L ≥ 1: conv, channel LayerNorm, max-pool); ours closes
level L - 1. Its position tables are (1, blocks, block positions, C) as ours are stored; its attention joins
the heads interleaved (local-attn's head_merge: channels)."""
from __future__ import annotations

from ..transfer import Rule
from .layout import block
from .target import Target

_SIZES = ("tiny", "small", "base")
_LEVELS = 3

MODELS: dict[str, Target] = {
    **{f"nest_{size}": Target("nest", size, {}) for size in _SIZES},
    **{f"nest_{size}_jx": Target("nest", size, {"pool_padding": "same"}) for size in _SIZES},
}

_BLOCK = r"levels\.(\d+)\.transformer_encoder\.(\d+)\."
_OURS = r"stages.\1.blocks.\2."

RULES: list[Rule] = [
    (r"patch_embed\.proj\.", "conv_stem.0.conv."),
    (r"levels\.(\d+)\.pos_embed$", r"stages.\1.pos.pos"),
    (_BLOCK + r"attn\.qkv\.", _OURS + "attn.qkv."),
    *block(_BLOCK, _OURS),
    *((rf"levels\.{s}\.pool\.conv\.", f"stages.{s - 1}.aggregate.0.conv_stem.0.conv.") for s in range(1, _LEVELS)),
    *((rf"levels\.{s}\.pool\.norm\.", f"stages.{s - 1}.aggregate.0.conv_stem.0.norm.") for s in range(1, _LEVELS)),
    (r"norm\.", "norm.norm."),
    (r"head\.", "head.fc."),
]
ORDINALS: dict[str, str] = {}
