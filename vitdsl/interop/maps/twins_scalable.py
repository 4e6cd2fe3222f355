"""Twins-SVT and ScalableViT: attention on feature maps (``reduced-attn`` with sub-sampled keys and
values, ``local-attn`` windows with a value convolution), channel LayerNorms and 1×1 convolutions.

Both keep their channel LayerNorm as ``g``/``b`` (1, C, 1, 1) and their 1×1 convolutions as
(o, i, 1, 1); the import reshapes them onto our LayerNorm and Linear weights.
"""
from ..transfer import Rule
from .common import channel_feedforward, channel_norm


def _twins_layer(src: str, dst: str) -> list[Rule]:
    """A Twins Transformer layer: (local attention, FF, global attention, FF), each in a Residual (fn)."""
    return [*channel_norm(src + r"0\.fn\.norm\.", dst + "local_attn.norm."),
            (src + r"0\.fn\.to_q\.", dst + "local_attn.qkv[0]."),
            (src + r"0\.fn\.to_kv\.", dst + "local_attn.qkv[1]."),
            (src + r"0\.fn\.to_out\.0\.", dst + "local_attn.out."),
            *channel_feedforward(src + r"1\.fn\.", dst + "local_ff."),
            *channel_norm(src + r"2\.fn\.norm\.", dst + "global_attn.norm."),
            (src + r"2\.fn\.to_q\.", dst + "global_attn.q."),
            (src + r"2\.fn\.to_kv\.", dst + "global_attn.kv."),
            (src + r"2\.fn\.to_out\.0\.", dst + "global_attn.out."),
            *channel_feedforward(src + r"3\.fn\.", dst + "global_ff.")]


# A Twins stage is (patch embedding, Transformer of depth 1, PEG, Transformer of depth s_depth); our
# stage is one repeat with the PEG in its first block, so the second Transformer's layer I is our
# block I + 1: the ordinal restS lists stage S's blocks from 1 on.
_TWINS: list[Rule] = [
    *channel_norm(r"layers\.(\d+)\.0\.proj\.0\.", r"stages.\1.patchify.pre_norm."),
    (r"layers\.(\d+)\.0\.proj\.1\.", r"stages.\1.patchify.proj."),
    *channel_norm(r"layers\.(\d+)\.0\.proj\.2\.", r"stages.\1.patchify.post_norm."),
    *_twins_layer(r"layers\.(\d+)\.1\.layers\.0\.", r"stages.\1.blocks.0."),
    (r"layers\.(\d+)\.2\.proj\.fn\.", r"stages.\1.blocks.0.peg.conv1."),
    *_twins_layer(r"layers\.(\d+)\.3\.layers\.(\d+)\.", r"<rest\1:\2>."),
    (r"layers\.6\.", "head.fc."),
]

_SCALABLE_BLOCK = r"layers\.(\d+)\.0\.layers\.(\d+)\."
_SCALABLE: list[Rule] = [
    (r"to_patches\.", "stem.0.conv."),
    *channel_norm(_SCALABLE_BLOCK + r"0\.norm\.", r"stages.\1.blocks.\2.ssa.norm."),
    (_SCALABLE_BLOCK + r"0\.to_q\.", r"stages.\1.blocks.\2.ssa.q."),
    (_SCALABLE_BLOCK + r"0\.to_k\.", r"stages.\1.blocks.\2.ssa.kv[0]."),  # one conv, keys then values
    (_SCALABLE_BLOCK + r"0\.to_v\.", r"stages.\1.blocks.\2.ssa.kv[1]."),
    (_SCALABLE_BLOCK + r"0\.to_out\.0\.", r"stages.\1.blocks.\2.ssa.out."),
    *channel_feedforward(_SCALABLE_BLOCK + r"1\.", r"stages.\1.blocks.\2.ff1."),
    (_SCALABLE_BLOCK + r"2\.proj\.", r"stages.\1.blocks.\2.peg.conv1."),
    *channel_feedforward(_SCALABLE_BLOCK + r"3\.", r"stages.\1.blocks.\2.ff2."),
    *channel_norm(_SCALABLE_BLOCK + r"4\.norm\.", r"stages.\1.blocks.\2.iwsa.norm."),
    (_SCALABLE_BLOCK + r"4\.local_interactive_module\.", r"stages.\1.blocks.\2.iwsa.value_conv."),
    (_SCALABLE_BLOCK + r"4\.to_q\.", r"stages.\1.blocks.\2.iwsa.qkv[0]."),
    (_SCALABLE_BLOCK + r"4\.to_k\.", r"stages.\1.blocks.\2.iwsa.qkv[1]."),
    (_SCALABLE_BLOCK + r"4\.to_v\.", r"stages.\1.blocks.\2.iwsa.qkv[2]."),
    (_SCALABLE_BLOCK + r"4\.to_out\.0\.", r"stages.\1.blocks.\2.iwsa.out."),
    *channel_norm(r"layers\.(\d+)\.0\.norm\.", r"stages.\1.norm.norm."),
    (r"layers\.(\d+)\.1\.conv\.", r"stages.\1.downsample.depthwise."),
    (r"mlp_head\.1\.", "head.norm."),
    (r"mlp_head\.2\.", "head.fc."),
]

MAPS = {
    "vit_pytorch.twins_svt.TwinsSVT": (_TWINS, {f"rest{s}": rf"stages\.{s}\.blocks\.(?!0\.)\d+" for s in range(4)}),
    "vit_pytorch.scalable_vit.ScalableViT": (_SCALABLE, {}),
}
