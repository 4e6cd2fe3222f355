"""DaViT (Ding et al., 2022) as timm has it: ``davit_{tiny,small,base,large,huge,giant}`` at 224×224, and Florence-2's
vision towers ``davit_base_fl`` and ``davit_huge_fl`` (the blueprint's ``florence2``: 768×768 images, 12×12 windows,
3×3 downsampling convolutions, the v2 channel attention, no classifier).

timm's stages are ``stages.S`` with the downsampling (``downsample``: ``norm``, ``conv``) before the blocks; each
dual block ``blocks.I`` holds a spatial and a channel block, ``0`` and ``1`` (``spatial_block`` and
``channel_block`` in the Florence-2 models), each ``cpe1`` → ``norm1`` → ``attn`` → ``cpe2`` → ``norm2`` → ``mlp``.
Its head normalises the pooled features (``head.norm``) before the classifier ``head.fc``."""
from __future__ import annotations

from ..transfer import Rule
from .target import Target

_SIZES = ("tiny", "small", "base", "large", "huge", "giant")

MODELS: dict[str, Target] = {
    **{f"davit_{size}": Target("davit", size, {}) for size in _SIZES},
    **{f"davit_{size}_fl": Target("davit", size, {"florence2": True}) for size in ("base", "huge")},
}

_STAGE, _DUAL, _OURS = r"stages\.(\d+)\.", r"stages\.(\d+)\.blocks\.(\d+)\.", r"stages.\1.blocks.\2."


def _half(src: str, ours: str) -> list[Rule]:
    """One half of a dual block, timm's ``src`` (a regex after the dual block's prefix) onto ours named ``ours``."""
    src, dst = _DUAL + src, _OURS + ours
    return [(src + r"cpe1\.proj\.", dst + "_cpe.conv1."), (src + r"norm1\.", dst + "_attn.norm."),
            (src + r"attn\.qkv\.", dst + "_attn.qkv."), (src + r"attn\.proj\.", dst + "_attn.out."),
            (src + r"cpe2\.proj\.", dst + "_ff_cpe.conv1."), (src + r"norm2\.", dst + "_ff.norm."),
            (src + r"mlp\.fc1\.", dst + "_ff.fc1."), (src + r"mlp\.fc2\.", dst + "_ff.fc2.")]


RULES: list[Rule] = [
    (r"stem\.conv\.", "stem.0.conv."),
    (r"stem\.norm\.", "stem.0.norm."),
    (_STAGE + r"downsample\.norm\.", r"stages.\1.down_norm.norm."),
    (_STAGE + r"downsample\.conv\.", r"stages.\1.down.depthwise."),
    *_half(r"(?:0|spatial_block)\.", "window"),
    *_half(r"(?:1|channel_block)\.", "channel"),
    (r"head\.norm\.", "norm."),
    (r"head\.fc\.", "head.fc."),
]
