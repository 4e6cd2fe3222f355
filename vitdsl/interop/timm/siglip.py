"""SigLIP's image towers (Zhai et al., 2023) as timm's ``vision_transformer.py`` registers them with the MAP head
(``global_pool='map'``): every ``vit_*_siglip_*`` model at its default input size but the ``_gap_`` ones (mean
pooling, another head) and ``vit_so400m_patch14_siglip_384``, whose 384 pixels are no multiple of its 14-pixel
patches (timm's convolution drops the last 6 rows and columns; timm's 378 is the same model without them).

timm's ``AttentionPoolLatent`` projects its latent query with ``q`` and the tokens with a fused ``kv`` (keys,
then values); our ``attn-pool`` fuses all three in one ``qkv``. Its ``norm`` and ``mlp`` are the pre-norm
residual MLP that follows the pooling, ``siglip.yaml``'s ``map_ff``."""
from __future__ import annotations

from ..transfer import Rule
from . import vit
from .target import Target

# (variant, patch, the image sizes timm registers it at, whether its GELU is the tanh one)
_MODELS = (("base", 16, (224, 256, 384, 512), False), ("base", 32, (256,), True),
           ("large", 16, (256, 384), False), ("large", 16, (512,), True), ("so400m", 14, (224, 378), False),
           ("so400m", 16, (256, 384, 512), True), ("giantopt", 16, (256, 384), True))
# each variant's own patch, image size and activation in siglip.yaml
_OWN = {"base": (16, 224, "gelu"), "large": (16, 256, "gelu"), "so400m": (14, 224, "gelu"),
        "giantopt": (16, 256, "gelu-tanh")}


def _target(variant: str, patch: int, size: int, tanh: bool) -> Target:
    own_patch, own_size, own_act = _OWN[variant]
    act = "gelu-tanh" if tanh else "gelu"
    return Target("siglip", variant, {**({"patch": patch} if patch != own_patch else {}),
                                      **({"image_size": size} if size != own_size else {}),
                                      **({"act": act} if act != own_act else {})})


MODELS: dict[str, Target] = {
    f"vit_{variant}_patch{patch}_siglip_{size}": _target(variant, patch, size, tanh)
    for variant, patch, sizes, tanh in _MODELS for size in sizes
}

RULES: list[Rule] = [
    (r"attn_pool\.latent$", "map.query"),
    (r"attn_pool\.q\.", "map.qkv[0]."),
    (r"attn_pool\.kv\.", "map.qkv[1]."),
    (r"attn_pool\.proj\.", "map.out."),
    (r"attn_pool\.norm\.", "map_ff.norm."),
    (r"attn_pool\.mlp\.", "map_ff."),
    *vit.RULES,
]
