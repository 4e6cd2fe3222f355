"""LeViT and CvT: attention on feature maps with convolutional projections (``conv-attn``).

LeViT's backbone is a flat list of Transformers (stage, shrink, stage, shrink, stage); the ordinal
``t`` numbers our ``blocks``, ``stages.S.shrink`` and ``stages.S.blocks`` repeats in that order.
Its separate ``to_k``/``to_v`` (1×1 conv + BN each) fill the parts of our fused ``kv``.
"""
from ..transfer import Rule
from .common import channel_feedforward, channel_norm

_LEVIT_ATTN = r"backbone\.(\d+)\.layers\.(\d+)\.0\."
_LEVIT: list[Rule] = [
    (r"conv_embedding\.(\d+)\.", r"stem.\1.conv."),
    (_LEVIT_ATTN + r"to_q\.0\.", r"<t:\1>.\2.attn.q.conv."),
    (_LEVIT_ATTN + r"to_q\.1\.", r"<t:\1>.\2.attn.q.norm."),
    (_LEVIT_ATTN + r"to_k\.0\.", r"<t:\1>.\2.attn.kv.conv[0]."),
    (_LEVIT_ATTN + r"to_k\.1\.", r"<t:\1>.\2.attn.kv.norm[0]."),
    (_LEVIT_ATTN + r"to_v\.0\.", r"<t:\1>.\2.attn.kv.conv[1]."),
    (_LEVIT_ATTN + r"to_v\.1\.", r"<t:\1>.\2.attn.kv.norm[1]."),
    (_LEVIT_ATTN + r"to_out\.1\.", r"<t:\1>.\2.attn.out."),
    (_LEVIT_ATTN + r"to_out\.2\.", r"<t:\1>.\2.attn.out_norm."),
    (_LEVIT_ATTN + r"pos_bias\.", r"<t:\1>.\2.attn.pos_bias."),
    (_LEVIT_ATTN + r"pos_indices$", None),  # ours is computed (and not saved)
    (r"backbone\.(\d+)\.layers\.(\d+)\.1\.net\.0\.", r"<t:\1>.\2.ff.fc1."),
    (r"backbone\.(\d+)\.layers\.(\d+)\.1\.net\.3\.", r"<t:\1>.\2.ff.fc2."),
    (r"mlp_head\.", "head.fc."),
    (r"distill_head\.", "distill_head.fc."),
]


def _separable(src: str, dst: str) -> list[Rule]:
    """CvT's DepthWiseConv2d: net = [depthwise conv, BN, 1×1 conv]."""
    return [(src + r"net\.0\.", dst + "dw."), (src + r"net\.1\.", dst + "norm."), (src + r"net\.2\.", dst + "conv.")]


_CVT_LAYER = r"layers\.(\d+)\.2\.layers\.(\d+)\."
_CVT: list[Rule] = [
    (r"layers\.(\d+)\.0\.", r"stages.\1.embed.0.conv."),
    *channel_norm(r"layers\.(\d+)\.1\.", r"stages.\1.embed.0.norm."),
    *channel_norm(_CVT_LAYER + r"0\.norm\.", r"stages.\1.blocks.\2.attn.norm."),
    *_separable(_CVT_LAYER + r"0\.to_q\.", r"stages.\1.blocks.\2.attn.q."),
    *_separable(_CVT_LAYER + r"0\.to_kv\.", r"stages.\1.blocks.\2.attn.kv."),
    (_CVT_LAYER + r"0\.to_out\.0\.", r"stages.\1.blocks.\2.attn.out."),
    *channel_feedforward(_CVT_LAYER + r"1\.", r"stages.\1.blocks.\2.ff."),
    (r"to_logits\.2\.", "head.fc."),
]

MAPS = {
    "vit_pytorch.levit.LeViT": (_LEVIT, {"t": r"(stages\.\d+\.)?(blocks|shrink)"}),
    "vit_pytorch.cvt.CvT": (_CVT, {}),
}
