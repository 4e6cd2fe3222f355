"""BEiT (Bao et al., 2022) and BEiT v2 (Peng et al., 2022), as timm's ``beit.py`` registers them: ``beit.yaml``.

timm's attention keeps its query and value biases beside a bias-free ``qkv`` Linear (``q_bias``, ``v_bias``;
the key bias is a zero buffer, not a weight), and each block's relative position table has the three cls rows
after the patch offsets, as ``global-attn``'s ``rel_pos_bias: table`` reads them. BEiT v2 changes the
pre-training, not the network: its models are the v1 variants with LayerScale starting at 1e-5 (a start value,
so the same weights fit either)."""
from __future__ import annotations

from ..transfer import RESHAPE
from .layout import block
from .target import Target

MODELS: dict[str, Target] = {
    "beit_base_patch16_224": Target("beit", "base"),
    "beit_base_patch16_384": Target("beit", "base", {"image_size": 384}),
    "beit_large_patch16_224": Target("beit", "large"),
    "beit_large_patch16_384": Target("beit", "large", {"image_size": 384}),
    "beit_large_patch16_512": Target("beit", "large", {"image_size": 512}),
    "beitv2_base_patch16_224": Target("beit", "base", {"layer_scale": 1e-5}),
    "beitv2_large_patch16_224": Target("beit", "large"),
}

RULES = [
    # timm's patch embedding is a Conv2d(C, D, p, stride p): its kernel is our projection of (c p1 p2) vectors
    (r"patch_embed\.proj\.weight$", RESHAPE + "patchify.proj.weight"),
    (r"patch_embed\.proj\.", "patchify.proj."),
    (r"cls_token$", "tokens.cls"),
    (r"blocks\.(\d+)\.attn\.qkv\.", r"blocks.\1.attn.qkv."),
    (r"blocks\.(\d+)\.attn\.([qv]_bias)$", r"blocks.\1.attn.qkv.\2"),
    (r"blocks\.(\d+)\.attn\.relative_position_bias_table$", r"blocks.\1.attn.rel_pos_bias.weight"),
    *block(r"blocks\.(\d+)\.", r"blocks.\1.", ("gamma_1", "gamma_2")),
    (r"fc_norm\.", "norm."),
    (r"head\.", "head.fc."),
]
