"""T2T-ViT and PiT: vit-pytorch numbers their mixed module lists flat, our blueprints nest them."""
from ..transfer import Rule
from .common import encoder, feedforward

# T2T's to_patch_embedding holds 4 modules per soft split ([rearrange], unfold, rearrange, transformer
# or identity) and then the Linear; split i's transformer is module 4i + 3.
_T2T_SPLITS = 8


def _t2t_rules() -> list[Rule]:
    rules: list[Rule] = []
    for i in range(_T2T_SPLITS - 1):
        src, dst = rf"to_patch_embedding\.{4 * i + 3}\.", f"t2t.{i}.transformer.0."
        rules += [(rf"{src}norm\.", f"{dst}norm."),
                  (rf"{src}layers\.0\.0\.norm\.", f"{dst}attn.norm."),
                  (rf"{src}layers\.0\.0\.to_qkv\.", f"{dst}attn.qkv."),
                  *feedforward(rf"{src}layers\.0\.1\.", f"{dst}ff.")]
    # the Linear after the last split: the only projection among the splits
    return rules + [(r"to_patch_embedding\.\d+\.(?=weight$|bias$)", "<split_proj:0>.")]


# PiT's layers alternate Transformer, Pool, ..., Transformer: the ordinal "layer" lists our stage
# stacks and pooling blocks in the same order.
_PIT_ATTN = [(r"layers\.(\d+)\.layers\.(\d+)\.0\.norm\.", r"<layer:\1>.\2.attn.norm."),
             (r"layers\.(\d+)\.layers\.(\d+)\.0\.to_qkv\.", r"<layer:\1>.\2.attn.qkv."),
             (r"layers\.(\d+)\.layers\.(\d+)\.0\.to_out\.0\.", r"<layer:\1>.\2.attn.out.")]

MAPS = {
    "vit_pytorch.t2t.T2TViT": (
        [(r"pos_embedding$", "pos_embed.pos"), (r"cls_token$", "tokens.cls"), *_t2t_rules(), *encoder(),
         (r"mlp_head\.", "head.fc.")],
        {"split_proj": r"t2t\.\d+\.split\.proj"}),
    "vit_pytorch.pit.PiT": (
        [(r"pos_embedding$", "pos_embed.pos"), (r"cls_token$", "tokens.cls"),
         (r"to_patch_embedding\.2\.", "patchify.proj."), *_PIT_ATTN,
         (r"layers\.(\d+)\.layers\.(\d+)\.1\.net\.0\.", r"<layer:\1>.\2.ff.norm."),
         (r"layers\.(\d+)\.layers\.(\d+)\.1\.net\.1\.", r"<layer:\1>.\2.ff.fc1."),
         (r"layers\.(\d+)\.layers\.(\d+)\.1\.net\.4\.", r"<layer:\1>.\2.ff.fc2."),
         (r"layers\.(\d+)\.downsample\.net\.0\.", r"<layer:\1>.depthwise."),
         (r"layers\.(\d+)\.downsample\.net\.1\.", r"<layer:\1>.pointwise."),
         (r"layers\.(\d+)\.cls_ff\.", r"<layer:\1>.prefix."),
         (r"mlp_head\.0\.", "head.norm."), (r"mlp_head\.1\.", "head.fc.")],
        {"layer": r"stages\.\d+\.(?:blocks|pool\.0\.downsample)"}),
}
