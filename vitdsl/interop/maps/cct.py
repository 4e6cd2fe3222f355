"""CCT: the conv tokenizer, CCT's own encoder layer (with the residual stream renormalised by
``norm1``) and sequence pooling."""
MAPS = {
    "vit_pytorch.cct.CCT": (
        [(r"tokenizer\.conv_layers\.(\d+)\.0\.", r"tokenizer.\1.conv."),
         (r"classifier\.positional_emb$", "pos_embed.pos"),
         (r"classifier\.blocks\.(\d+)\.pre_norm\.", r"blocks.\1.attn.norm."),
         (r"classifier\.blocks\.(\d+)\.self_attn\.qkv\.", r"blocks.\1.attn.qkv."),
         (r"classifier\.blocks\.(\d+)\.self_attn\.proj\.", r"blocks.\1.attn.out."),
         (r"classifier\.blocks\.(\d+)\.norm1\.", r"blocks.\1.norm."),
         (r"classifier\.blocks\.(\d+)\.linear1\.", r"blocks.\1.ff.fc1."),
         (r"classifier\.blocks\.(\d+)\.linear2\.", r"blocks.\1.ff.fc2."),
         (r"classifier\.norm\.", "norm."),
         (r"classifier\.attention_pool\.", "pool.score."),
         (r"classifier\.fc\.", "head.fc.")], {}),
}
