"""MobileViT (conv-BN-SiLU, MV2 inverted residuals, MobileViT blocks) and SepViT (overlapping patch
embedding, PEG, DSSA)."""
from ..transfer import Rule
from .common import channel_feedforward, channel_norm, feedforward


def _conv_bn(src: str, dst: str) -> list[Rule]:
    """vit-pytorch's conv-BN-SiLU Sequential onto one conv-stem layer."""
    return [(src + r"0\.", dst + "conv."), (src + r"1\.", dst + "norm.")]


def _mv2(src: str, dst: str) -> list[Rule]:
    """MV2Block.conv = [1×1, BN, SiLU, dw 3×3, BN, SiLU, 1×1, BN] onto mbconv."""
    parts = {0: "expand.conv", 1: "expand.norm", 3: "depthwise.conv", 4: "depthwise.norm", 6: "project.conv",
             7: "project.norm"}
    return [(rf"{src}conv\.{i}\.", f"{dst}{name}.") for i, name in parts.items()]


_VIT_BLOCK = r"trunk\.(\d+)\.1\."
_LAYER = _VIT_BLOCK + r"transformer\.layers\.(\d+)\."
_MOBILEVIT: list[Rule] = [
    *_conv_bn(r"conv1\.", "conv1.0."),
    *_mv2(r"stem\.(\d+)\.", r"stem.\1.mbconv."),
    *_mv2(r"trunk\.(\d+)\.0\.", r"trunk.\1.down."),
    *_conv_bn(_VIT_BLOCK + r"conv1\.", r"trunk.\1.local.0."),
    *_conv_bn(_VIT_BLOCK + r"conv2\.", r"trunk.\1.local.1."),
    (_LAYER + r"0\.norm\.", r"trunk.\1.transformer.\2.attn.norm."),
    (_LAYER + r"0\.to_qkv\.", r"trunk.\1.transformer.\2.attn.qkv."),
    (_LAYER + r"0\.to_out\.0\.", r"trunk.\1.transformer.\2.attn.out."),
    *feedforward(_LAYER + r"1\.", r"trunk.\1.transformer.\2.ff."),
    *_conv_bn(_VIT_BLOCK + r"conv3\.", r"trunk.\1.project.0."),
    *_conv_bn(_VIT_BLOCK + r"conv4\.", r"trunk.\1.fuse.0."),
    *_conv_bn(r"to_logits\.0\.", "conv2.0."),
    (r"to_logits\.2\.", "head.fc."),
]


_STAGE = r"layers\.(\d+)\."
_BLOCK = _STAGE + r"2\.layers\.(\d+)\."
_ATTN = _BLOCK + r"0\."
_SEPVIT: list[Rule] = [
    (_STAGE + r"0\.conv\.", r"stages.\1.embed.0.conv."),
    (_STAGE + r"1\.proj\.", r"stages.\1.peg.conv1."),
    (_ATTN + r"window_tokens$", r"stages.\1.blocks.\2.attn.window_token"),
    *channel_norm(_ATTN + r"norm\.", r"stages.\1.blocks.\2.attn.norm."),
    (_ATTN + r"to_qkv\.", r"stages.\1.blocks.\2.attn.qkv."),
    (_ATTN + r"window_tokens_to_qk\.0\.", r"stages.\1.blocks.\2.attn.token_norm."),
    (_ATTN + r"window_tokens_to_qk\.3\.", r"stages.\1.blocks.\2.attn.token_qk."),
    (_ATTN + r"to_out\.0\.", r"stages.\1.blocks.\2.attn.out."),
    *channel_feedforward(_BLOCK + r"1\.", r"stages.\1.blocks.\2.ff."),
    *channel_norm(_STAGE + r"2\.norm\.", r"stages.\1.norm.norm."),
    (r"mlp_head\.1\.", "head.norm."),
    (r"mlp_head\.2\.", "head.fc."),
]

MAPS = {
    "vit_pytorch.mobile_vit.MobileViT": (_MOBILEVIT, {}),
    "vit_pytorch.sep_vit.SepViT": (_SEPVIT, {}),
}
