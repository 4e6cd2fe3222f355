"""ViT, DeiT, distilled DeiT and DeiT III, as timm's ``vision_transformer.py`` and ``deit.py`` register them.

ViT and (non-distilled) DeiT are one architecture, ``vit.yaml``'s paper variants; distilled DeiT is
``deit.yaml``, DeiT III ``deit3.yaml``. timm registers three of them without a classifier (num_classes 0):
the blueprint's ``classes: 0`` leaves the head out too.
"""
from __future__ import annotations

from ..transfer import RESHAPE
from .layout import block
from .target import Target

HEADLESS = {"vit_small_patch8_224", "vit_large_patch32_224", "vit_huge_patch14_224"}
# vit.yaml's variant, its own patch size, and the patch sizes timm registers at 224 for it
VIT = (("tiny", 16, (16,)), ("small", 16, (8, 16, 32)), ("base", 16, (8, 16, 32)), ("large", 16, (14, 16, 32)),
       ("huge", 14, (14,)), ("giant", 14, (14,)))


def _vit(size: str, own: int, patch: int) -> Target:
    name = f"vit_{size}_patch{patch}_224"
    return Target("vit", size, {**({} if patch == own else {"patch": patch}),
                                **({"classes": 0} if name in HEADLESS else {})})


MODELS: dict[str, Target] = {
    **{f"vit_{size}_patch{p}_224": _vit(size, own, p) for size, own, patches in VIT for p in patches},
    **{f"deit_{size}_patch16_224": Target("vit", size) for size in ("tiny", "small", "base")},
    **{f"deit_{size}_distilled_patch16_224": Target("deit", size) for size in ("tiny", "small", "base")},
    **{f"deit3_{size}_patch16_224": Target("deit3", size) for size in ("small", "medium", "base", "large")},
    "deit3_huge_patch14_224": Target("deit3", "huge"),
}

RULES = [
    # timm's patch embedding is a Conv2d(C, D, p, stride p): its kernel is our projection of (c p1 p2) vectors
    (r"patch_embed\.proj\.weight$", RESHAPE + "patchify.proj.weight"),
    (r"patch_embed\.proj\.", "patchify.proj."),
    (r"cls_token$", "tokens[0].cls"),  # one (2, D) table for the class and the distillation token
    (r"dist_token$", "tokens[1].cls"),
    (r"pos_embed$", "pos_embed.pos"),
    (r"blocks\.(\d+)\.attn\.qkv\.", r"blocks.\1.attn.qkv."),
    *block(r"blocks\.(\d+)\.", r"blocks.\1.", (r"ls1\.gamma", r"ls2\.gamma")),
    (r"norm\.", "norm."),
    (r"head\.", "head.fc."),
    (r"head_dist\.", "distill_head.fc."),
]
