"""Token-sequence variants that reuse the ViT layout with other attention: DeepViT, CaiT, XCiT."""
from ..transfer import Rule
from .common import PATCHIFY, encoder, feedforward


def _scaled(src: str, dst: str, fused: bool) -> list[Rule]:
    """A CaiT/XCiT stack: LayerScale(fn) wrappers, so each sub-block is `.N.fn` with its `.N.scale`.
    `fused`: our attention there is self-attention with one qkv (filled from to_q and to_kv)."""
    q, kv = ("qkv[0]", "qkv[1]") if fused else ("q", "kv")
    return [
        (rf"{src}layers\.(\d+)\.0\.scale$", rf"{dst}.\1.attn.gamma"),
        (rf"{src}layers\.(\d+)\.1\.scale$", rf"{dst}.\1.ff.gamma"),
        (rf"{src}layers\.(\d+)\.0\.fn\.norm\.", rf"{dst}.\1.attn.norm."),
        (rf"{src}layers\.(\d+)\.0\.fn\.to_q\.", rf"{dst}.\1.attn.{q}."),
        (rf"{src}layers\.(\d+)\.0\.fn\.to_kv\.", rf"{dst}.\1.attn.{kv}."),
        (rf"{src}layers\.(\d+)\.0\.fn\.to_out\.0\.", rf"{dst}.\1.attn.out."),
        (rf"{src}layers\.(\d+)\.0\.fn\.mix_heads_pre_attn$", rf"{dst}.\1.attn.mix_pre"),
        (rf"{src}layers\.(\d+)\.0\.fn\.mix_heads_post_attn$", rf"{dst}.\1.attn.mix_post"),
        *feedforward(rf"{src}layers\.(\d+)\.1\.fn\.", rf"{dst}.\1.ff."),
    ]


MAPS = {
    "vit_pytorch.deepvit.DeepViT": (
        [(r"pos_embedding$", "pos_embed.pos"), (r"cls_token$", "tokens.cls"), *PATCHIFY,
         *encoder(final_norm=False),
         (r"transformer\.layers\.(\d+)\.0\.reattn_weights$", r"blocks.\1.attn.reattn"),
         (r"transformer\.layers\.(\d+)\.0\.reattn_norm\.1\.", r"blocks.\1.attn.reattn_norm."),
         (r"mlp_head\.0\.", "head.norm."), (r"mlp_head\.1\.", "head.fc.")], {}),
    "vit_pytorch.cait.CaiT": (
        [(r"pos_embedding$", "pos_embed.pos"), (r"cls_token$", "tokens.cls"), *PATCHIFY,
         *_scaled(r"patch_transformer\.", "blocks", fused=True),
         *_scaled(r"cls_transformer\.", "cls_blocks", fused=False),
         (r"mlp_head\.0\.", "head.norm."), (r"mlp_head\.1\.", "head.fc.")], {}),
    "vit_pytorch.xcit.XCiT": (
        [(r"pos_embedding$", "pos_embed.pos"), (r"cls_token$", "tokens.cls"), *PATCHIFY,
         (r"xcit_transformer\.layers\.(\d+)\.0\.scale$", r"blocks.\1.attn.gamma"),
         (r"xcit_transformer\.layers\.(\d+)\.1\.scale$", r"blocks.\1.lpi.gamma"),
         (r"xcit_transformer\.layers\.(\d+)\.2\.scale$", r"blocks.\1.ff.gamma"),
         (r"xcit_transformer\.layers\.(\d+)\.0\.fn\.norm\.", r"blocks.\1.attn.norm."),
         (r"xcit_transformer\.layers\.(\d+)\.0\.fn\.to_qkv\.", r"blocks.\1.attn.qkv."),
         (r"xcit_transformer\.layers\.(\d+)\.0\.fn\.temperature$", r"blocks.\1.attn.temperature"),
         (r"xcit_transformer\.layers\.(\d+)\.0\.fn\.to_out\.0\.", r"blocks.\1.attn.out."),
         (r"xcit_transformer\.layers\.(\d+)\.1\.fn\.net\.0\.", r"blocks.\1.lpi.norm."),
         (r"xcit_transformer\.layers\.(\d+)\.1\.fn\.net\.2\.", r"blocks.\1.lpi.conv1."),
         (r"xcit_transformer\.layers\.(\d+)\.1\.fn\.net\.3\.", r"blocks.\1.lpi.mid_norm."),
         (r"xcit_transformer\.layers\.(\d+)\.1\.fn\.net\.5\.", r"blocks.\1.lpi.conv2."),
         *feedforward(r"xcit_transformer\.layers\.(\d+)\.2\.fn\.", r"blocks.\1.ff."),
         (r"final_norm\.", "norm."),
         *_scaled(r"cls_transformer\.", "cls_blocks", fused=False),
         (r"mlp_head\.0\.", "head.norm."), (r"mlp_head\.1\.", "head.fc.")], {}),
}
