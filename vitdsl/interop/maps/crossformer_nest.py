"""CrossFormer and NesT: attention and feed-forward on (B, C, H, W) maps with their own channel
LayerNorm (``g``, ``b`` of shape (1, C, 1, 1)) and 1×1 convolutions, which our channels-last norms and
linear maps hold as (C,) and (out, in)."""
from ..transfer import Rule
from .common import channel_feedforward, channel_norm

_CF_LAYER = r"layers\.(\d+)\.1\.layers\.(\d+)\."
_CF_DST = r"stages.\1.blocks.\2."


def _crossformer_attn(index: int, name: str) -> list[Rule]:
    src, dst = _CF_LAYER + rf"{index}\.", _CF_DST + name + "."
    return [*channel_norm(src + r"norm\.", dst + "norm."), (src + r"to_qkv\.", dst + "qkv."),
            (src + r"to_out\.", dst + "out."), (src + r"dpb\.", dst + "rel_pos_mlp.")]


def _crossformer_ff(index: int, name: str) -> list[Rule]:
    src, dst = _CF_LAYER + rf"{index}\.", _CF_DST + name + "."
    return [*channel_norm(src + r"0\.", dst + "norm."), (src + r"1\.", dst + "fc1."), (src + r"4\.", dst + "fc2.")]


_CROSSFORMER: list[Rule] = [
    # the cross-scale convolutions, in sorted kernel order on both sides
    (r"layers\.(\d+)\.0\.convs\.(\d+)\.", r"stages.\1.embed.\2.conv.0.conv."),
    *_crossformer_attn(0, "short_attn"), *_crossformer_ff(1, "short_ff"),
    *_crossformer_attn(2, "long_attn"), *_crossformer_ff(3, "long_ff"),
    (r"to_logits\.1\.", "head.fc."),
]

_NEST_LAYER = r"layers\.(\d+)\.0\.layers\.(\d+)\."
_NEST: list[Rule] = [
    *channel_norm(r"to_patch_embedding\.1\.", "patchify.pre_norm."),
    (r"to_patch_embedding\.2\.", "patchify.proj."),
    *channel_norm(r"to_patch_embedding\.3\.", "patchify.post_norm."),
    (r"layers\.(\d+)\.0\.pos_emb$", r"stages.\1.pos.pos"),
    *channel_norm(_NEST_LAYER + r"0\.norm\.", r"stages.\1.blocks.\2.attn.norm."),
    (_NEST_LAYER + r"0\.to_qkv\.", r"stages.\1.blocks.\2.attn.qkv."),
    (_NEST_LAYER + r"0\.to_out\.0\.", r"stages.\1.blocks.\2.attn.out."),
    *channel_feedforward(_NEST_LAYER + r"1\.", r"stages.\1.blocks.\2.ff."),
    # Aggregate: conv 3×3 → channel LayerNorm → max-pool
    (r"layers\.(\d+)\.1\.0\.", r"stages.\1.aggregate.0.conv_stem.0.conv."),
    *channel_norm(r"layers\.(\d+)\.1\.1\.", r"stages.\1.aggregate.0.conv_stem.0.norm."),
    *channel_norm(r"mlp_head\.0\.", "norm.norm."),
    (r"mlp_head\.2\.", "head.fc."),
]

MAPS = {
    "vit_pytorch.crossformer.CrossFormer": (_CROSSFORMER, {}),
    "vit_pytorch.nest.NesT": (_NEST, {}),
}
