"""CaiT (Touvron et al., 2021) as timm has it: every ``cait_*`` model at its default input size.

timm's class-attention blocks project queries, keys and values with three Linear layers; ours with
``q`` and a fused ``kv`` (keys, then values). Its talking heads are the Linear layers ``proj_l``
(before the softmax) and ``proj_w`` (after it)."""
from __future__ import annotations

from ..transfer import Rule
from .layout import block
from .target import Target

# (variant, image sizes timm registers it at)
_SIZES = {"xxs24": (224, 384), "xxs36": (224, 384), "xs24": (384,), "s24": (224, 384), "s36": (384,),
          "m36": (384,), "m48": (448,)}

MODELS: dict[str, Target] = {
    f"cait_{variant}_{size}": Target("cait", variant, {} if size == 224 else {"image_size": size})
    for variant, sizes in _SIZES.items() for size in sizes
}


RULES: list[Rule] = [
    (r"cls_token$", "tokens.cls"),
    (r"pos_embed$", "pos_embed.pos"),
    (r"patch_embed\.proj\.", "conv_stem.0.conv."),
    *block(r"blocks\.(\d+)\.", r"blocks.\1.", ("gamma_1", "gamma_2")),
    (r"blocks\.(\d+)\.attn\.qkv\.", r"blocks.\1.attn.qkv."),
    (r"blocks\.(\d+)\.attn\.proj_l\.", r"blocks.\1.attn.talk_pre."),
    (r"blocks\.(\d+)\.attn\.proj_w\.", r"blocks.\1.attn.talk_post."),
    *block(r"blocks_token_only\.(\d+)\.", r"cls_blocks.\1.", ("gamma_1", "gamma_2")),
    (r"blocks_token_only\.(\d+)\.attn\.q\.", r"cls_blocks.\1.attn.q."),
    (r"blocks_token_only\.(\d+)\.attn\.k\.", r"cls_blocks.\1.attn.kv[0]."),
    (r"blocks_token_only\.(\d+)\.attn\.v\.", r"cls_blocks.\1.attn.kv[1]."),
    (r"norm\.", "head.norm."),
    (r"head\.", "head.fc."),
]
ORDINALS: dict[str, str] = {}
