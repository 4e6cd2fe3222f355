"""XCiT (El-Nouby et al., 2021) as timm has it: every ``xcit_*`` model (p16 and p8, at 224 and 384).

timm's patch embedding is a Sequential of (conv, BatchNorm) pairs with GELUs between them (indices 0, 2,
...); its Fourier positional encoding projects with a 1×1 convolution, ours with a Linear map. The class
attention's second norm normalises every token (ours: a norm block) or, in XCiT-nano, the cls token
only (ours: a norm block over the prefix, which keeps its LayerNorm one level deeper)."""
from __future__ import annotations

from ..transfer import Rule
from .layout import block
from .target import Target

_DEPTHS = {"nano": (12,), "tiny": (12, 24), "small": (12, 24), "medium": (24,), "large": (24,)}


def _overrides(patch: int, image: int) -> dict:
    return {**({} if patch == 16 else {"patch": patch}), **({} if image == 224 else {"image_size": image})}


MODELS: dict[str, Target] = {
    f"xcit_{size}_{depth}_p{patch}_{image}": Target("xcit", f"{size}{depth}", _overrides(patch, image))
    for size, depths in _DEPTHS.items() for depth in depths for patch in (16, 8) for image in (224, 384)
}

_BLOCK, _OURS = r"blocks\.(\d+)\.", r"blocks.\1."
_CLS, _OURS_CLS = r"cls_attn_blocks\.(\d+)\.", r"cls_blocks.\1."

RULES: list[Rule] = [
    (r"cls_token$", "tokens.cls"),
    *((rf"patch_embed\.proj\.{2 * i}\.0\.", f"conv_stem.{i}.conv.") for i in range(4)),
    *((rf"patch_embed\.proj\.{2 * i}\.1\.", f"conv_stem.{i}.norm.") for i in range(4)),
    (r"pos_embed\.token_projection\.", "pos_embed.proj."),
    *block(_BLOCK, _OURS, ("gamma1", "gamma2")), (_BLOCK + r"gamma3$", _OURS + "lpi.gamma"),
    (_BLOCK + r"attn\.temperature$", _OURS + "attn.temperature"), (_BLOCK + r"attn\.qkv\.", _OURS + "attn.qkv."),
    (_BLOCK + r"norm3\.", _OURS + "lpi.norm."), (_BLOCK + r"local_mp\.conv1\.", _OURS + "lpi.conv1."),
    (_BLOCK + r"local_mp\.bn\.", _OURS + "lpi.mid_norm."), (_BLOCK + r"local_mp\.conv2\.", _OURS + "lpi.conv2."),
    (_CLS + r"gamma1$", _OURS_CLS + "attn.gamma"), (_CLS + r"gamma2$", _OURS_CLS + "ff.gamma"),
    (_CLS + r"norm1\.", _OURS_CLS + "attn.norm."), (_CLS + r"attn\.q\.", _OURS_CLS + "attn.q."),
    (_CLS + r"attn\.k\.", _OURS_CLS + "attn.kv[0]."), (_CLS + r"attn\.v\.", _OURS_CLS + "attn.kv[1]."),
    (_CLS + r"attn\.proj\.", _OURS_CLS + "attn.out."), (_CLS + r"norm2\.", r"<cls_norm:\1>."),
    (_CLS + r"mlp\.fc1\.", _OURS_CLS + "ff.fc1."), (_CLS + r"mlp\.fc2\.", _OURS_CLS + "ff.fc2."),
    (r"norm\.", "head.norm."),
    (r"head\.", "head.fc."),
]
ORDINALS: dict[str, str] = {"cls_norm": r"cls_blocks\.\d+\.norm(?:\.norm)?(?=\.(?:weight|bias)$)"}
