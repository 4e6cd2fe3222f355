"""NaViT: bias-free LayerNorms (``gamma``, with ``beta`` a zero buffer that is dropped), separate
``to_q``/``to_kv`` joined into our fused ``qkv``, qk-norm gammas, and the attention pool."""
from ..transfer import ZERO, Rule


def _attn(src: str, dst: str) -> list[Rule]:
    return [(rf"{src}norm\.gamma$", rf"{dst}norm.weight"),
            (rf"{src}q_norm\.gamma$", rf"{dst}q_norm.weight"),
            (rf"{src}k_norm\.gamma$", rf"{dst}k_norm.weight"),
            (rf"{src}to_q\.", rf"{dst}qkv[0]."),
            (rf"{src}to_kv\.", rf"{dst}qkv[1]."),
            (rf"{src}to_out\.0\.", rf"{dst}out.")]


MAPS = {
    "vit_pytorch.na_vit.NaViT": (
        [(r".*\.beta$", ZERO),
         (r"to_patch_embedding\.0\.gamma$", "patchify.pre_norm.weight"),
         (r"to_patch_embedding\.1\.", "patchify.proj."),
         (r"to_patch_embedding\.2\.gamma$", "patchify.post_norm.weight"),
         (r"pos_embed_height$", "pos_embed.rows"),
         (r"pos_embed_width$", "pos_embed.cols"),
         *_attn(r"transformer\.layers\.(\d+)\.0\.", r"blocks.\1.attn."),
         (r"transformer\.layers\.(\d+)\.1\.0\.gamma$", r"blocks.\1.ff.norm.weight"),
         (r"transformer\.layers\.(\d+)\.1\.1\.", r"blocks.\1.ff.fc1."),
         (r"transformer\.layers\.(\d+)\.1\.4\.", r"blocks.\1.ff.fc2."),
         (r"transformer\.norm\.gamma$", "norm.weight"),
         (r"attn_pool_queries$", "pool.query"),
         *_attn(r"attn_pool\.", "pool."),
         (r"mlp_head\.0\.gamma$", "head.norm.weight"),
         (r"mlp_head\.1\.", "head.fc.")],
        {}),
}
