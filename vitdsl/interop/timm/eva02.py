"""EVA-02 (Fang et al., 2023) as timm's ``eva.py`` registers it: every ``eva02_*`` image classifier at its default
input size (``eva02.yaml``'s variants; the 336 and 448 ones are the same models on a larger grid, whose rotary
positions timm rescales to the 16×16 pre-training grid as ``rope_ref`` does).

tiny and small fuse queries, keys and values into one ``qkv`` with ``q_bias`` and ``v_bias`` and pack the SwiGLU's
gate and value in one ``fc1`` (gate first, as ours); base and large project with ``q_proj``, ``k_proj`` (no bias)
and ``v_proj``, and split the SwiGLU into ``fc1_g`` and ``fc1_x`` with a LayerNorm (``mlp.norm``) before ``fc2``.
timm's ``eva02_*_clip_*`` models (CLIP image towers, no classifier of this form) are not here."""
from __future__ import annotations

from ..transfer import RESHAPE, Rule
from .layout import block
from .target import Target

# (variant, image sizes timm registers it at)
_SIZES = {"tiny": (224, 336), "small": (224, 336), "base": (224, 448), "large": (224, 448)}

MODELS: dict[str, Target] = {
    # timm registers the 224 models (MIM pre-trained) without a classifier, the fine-tuned ones with one
    f"eva02_{variant}_patch14_{size}": Target("eva02", variant, {"classes": 0} if size == 224 else {"image_size": size})
    for variant, sizes in _SIZES.items() for size in sizes
}

_B, _O = r"blocks\.(\d+)\.", r"blocks.\1."
RULES: list[Rule] = [
    (r"patch_embed\.proj\.weight$", RESHAPE + "patchify.proj.weight"),
    (r"patch_embed\.proj\.", "patchify.proj."),
    (r"cls_token$", "tokens.cls"),
    (r"pos_embed$", "pos_embed.pos"),
    *block(_B, _O),
    (_B + r"attn\.qkv\.", _O + "attn.qkv."),
    (_B + r"attn\.q_bias$", _O + "attn.qkv.q_bias"),
    (_B + r"attn\.v_bias$", _O + "attn.qkv.v_bias"),
    (_B + r"attn\.q_proj\.bias$", _O + "attn.qkv.q_bias"),
    (_B + r"attn\.v_proj\.bias$", _O + "attn.qkv.v_bias"),
    (_B + r"attn\.q_proj\.", _O + "attn.qkv[0]."),
    (_B + r"attn\.k_proj\.", _O + "attn.qkv[1]."),
    (_B + r"attn\.v_proj\.", _O + "attn.qkv[2]."),
    (_B + r"mlp\.fc1_g\.", _O + "ff.fc1[0]."),
    (_B + r"mlp\.fc1_x\.", _O + "ff.fc1[1]."),
    (_B + r"mlp\.norm\.", _O + "ff.gate_norm."),
    (r"fc_norm\.", "norm."),
    (r"head\.", "head.fc."),
]
ORDINALS: dict[str, str] = {}
