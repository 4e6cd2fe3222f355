"""MViTv2 (Li et al., 2022) as timm has it: ``mvitv2_{tiny,small,base,large}`` and the class-token models
``mvitv2_{small,base,large,huge}_cls`` (base, large and huge with timm's ImageNet-21k head of 19168 classes).

timm's blocks are ``stages.S.blocks.I``: ``norm1`` → ``attn`` (``qkv``, the pooling ``pool_q/k/v`` and
``norm_q/k/v``, ``rel_pos_h/w``, ``proj``), whose residual is projected by ``shortcut_proj_attn`` where the
attention widens; ``norm2`` → ``mlp``, projected by ``shortcut_proj_mlp`` where the MLP widens (large)."""
from __future__ import annotations

from ..transfer import Rule
from .layout import block
from .target import Target

_IN21K = {"classes": 19168}

MODELS: dict[str, Target] = {
    **{f"mvitv2_{size}": Target("mvitv2", size, {}) for size in ("tiny", "small", "base", "large")},
    "mvitv2_small_cls": Target("mvitv2", "small", {"cls": True}),
    "mvitv2_base_cls": Target("mvitv2", "base", {"cls": True, **_IN21K}),
    "mvitv2_large_cls": Target("mvitv2", "large", {"cls": True, "expand_attn": True, **_IN21K}),
    "mvitv2_huge_cls": Target("mvitv2", "huge", _IN21K),
}

_BLOCK, _OURS = r"stages\.(\d+)\.blocks\.(\d+)\.", r"stages.\1.blocks.\2."

RULES: list[Rule] = [
    (r"patch_embed\.proj\.", "<reshape>patchify.proj."),  # 7×7 conv → (c p1 p2) projection
    (r"cls_token$", "tokens.cls"),
    *block(_BLOCK, _OURS),
    (_BLOCK + r"attn\.qkv\.", _OURS + "attn.qkv."),
    (_BLOCK + r"attn\.(pool_[qkv]|norm_[qkv])\.", _OURS + r"attn.\3."),
    (_BLOCK + r"attn\.(rel_pos_[hw])$", _OURS + r"attn.\3"),
    (_BLOCK + r"shortcut_proj_attn\.", _OURS + "attn.shortcut."),
    (_BLOCK + r"shortcut_proj_mlp\.", _OURS + "ff.shortcut."),
    (r"norm\.", "norm."),
    (r"head\.fc\.", "head.fc."),
]
