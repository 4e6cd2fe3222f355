"""Swin Transformer v1 (Liu et al., 2021) as timm has it: ``swin_{tiny,small,base,large}_patch4_window7_224``
and ``swin_{base,large}_patch4_window12_384`` (the 384 models: 12×12 windows, so 23×23 position tables).
Swin V2 (``swinv2_*``, cosine attention and a continuous position bias) and the searched ``swin_s3_*`` (their
own window per stage) are other models and not here.

timm keeps its maps channels-last (NHWC); ours are (C, H, W) maps, the same tokens. Its stages are ``layers.S``
with the patch merging (``downsample``: ``norm``, ``reduction``) before the blocks; its position table is
(offsets, heads), read at query - key, as our offsets-first table."""
from __future__ import annotations

from ..transfer import DERIVED, Rule
from .layout import block
from .target import Target

_SIZES = ("tiny", "small", "base", "large")

MODELS: dict[str, Target] = {
    **{f"swin_{size}_patch4_window7_224": Target("swin", size, {}) for size in _SIZES},
    **{f"swin_{size}_patch4_window12_384": Target("swin", size, {"image_size": 384, "window": 12})
       for size in ("base", "large")},
}

_BLOCK, _OURS = r"layers\.(\d+)\.blocks\.(\d+)\.", r"stages.\1.blocks.\2."

RULES: list[Rule] = [
    (r"patch_embed\.proj\.", "<reshape>patchify.proj."),  # p×p conv → (c p1 p2) projection
    (r"patch_embed\.norm\.", "patchify.post_norm."),
    (r"layers\.(\d+)\.downsample\.norm\.", r"stages.\1.merge.pre_norm."),
    (r"layers\.(\d+)\.downsample\.reduction\.", r"stages.\1.merge.proj."),
    *block(_BLOCK, _OURS),
    (_BLOCK + r"attn\.qkv\.", _OURS + "attn.qkv."),
    (_BLOCK + r"attn\.relative_position_bias_table$", _OURS + "attn.rel_pos_bias.weight"),
    (_BLOCK + r"attn\.relative_position_index$", DERIVED),
    (_BLOCK + r"attn_mask$", DERIVED),
    (r"norm\.", "norm.norm."),  # the final LayerNorm, on a map one level deeper
    (r"head\.fc\.", "head.fc."),
]
