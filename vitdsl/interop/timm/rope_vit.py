"""RoPE-ViT (Heo et al., 2024) as timm's ``eva.py`` registers it: ``vit_{small,base,large}_patch16_rope_224``
(RoPE-Axial), with ``_mixed`` (RoPE-Mixed: learned frequencies per block and head) and ``_ape`` (learned absolute
positions of the patches as well), and timm's SBB ``vit_*_patch16_rope_reg{1,4}_gap_256`` (registers, no class
token, the patch tokens averaged): ``rope_vit.yaml``'s variants and knobs.

timm builds them all from its ``Eva`` class, which is also EVA-02's, but with another block (a plain GELU MLP, no
SwiGLU, LayerScale), another rotation (RoPE-ViT's: column first, base 100 or learned), no or patch-only positions
and another readout, so they are a blueprint of their own rather than variants of ``eva02.yaml``. timm keeps the
RoPE-Mixed frequencies of every block in one tensor, ``rope.freqs`` (2, depth, heads, d/2); ours are each block's
``attn.rope.freqs`` (2, heads, d/2), the slices along its second dimension."""
from __future__ import annotations

from ..transfer import RESHAPE, Rule
from .layout import block
from .target import Target

_NAVER = {"small": "small", "base": "base", "large": "large"}  # timm size → variant (RoPE-ViT's)
_FORMS = {"": {}, "_ape": {"ape": True}, "_mixed": {"rope": "mixed", "rope_theta": 10},
          "_mixed_ape": {"rope": "mixed", "rope_theta": 10, "ape": True}}
_SBB = {"medium": "medium_reg1", "mediumd": "mediumd_reg1", "betwixt": "betwixt_reg4", "base": "base_reg1"}

MODELS: dict[str, Target] = {
    **{f"vit_{size}_patch16_rope{form}_224": Target("rope_vit", variant, dict(overrides))
       for size, variant in _NAVER.items() for form, overrides in _FORMS.items()},
    **{f"vit_{size}_patch16_rope_{variant.rsplit('_', 1)[1]}_gap_256": Target("rope_vit", variant)
       for size, variant in _SBB.items()},
}

_B, _O = r"blocks\.(\d+)\.", r"blocks.\1."
RULES: list[Rule] = [
    (r"patch_embed\.proj\.weight$", RESHAPE + "patchify.proj.weight"),
    (r"patch_embed\.proj\.", "patchify.proj."),
    (r"cls_token$", "tokens.cls"),
    (r"reg_token$", "tokens.registers"),
    (r"pos_embed$", "pos_embed.pos"),
    (r"rope\.freqs$", "<split=1>blocks.*.attn.rope.freqs"),
    *block(_B, _O, ("gamma_1", "gamma_2")),
    (_B + r"attn\.qkv\.", _O + "attn.qkv."),
    (_B + r"attn\.q_bias$", _O + "attn.qkv.q_bias"),
    (_B + r"attn\.v_bias$", _O + "attn.qkv.v_bias"),
    (r"norm\.", "norm."),
    (r"fc_norm\.", "fc_norm."),
    (r"head\.", "head.fc."),
]
