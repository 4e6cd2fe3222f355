"""efficient.ViT with a vit.Transformer as its transformer (the blueprint's default 'transformer' item)."""
from .common import PATCHIFY, encoder

MAPS = {
    "vit_pytorch.efficient.ViT": (
        [(r"pos_embedding$", "pos_embed.pos"), (r"cls_token$", "tokens.cls"), *PATCHIFY,
         *encoder(dst="transformer.0.", block="layers"), (r"mlp_head\.0\.", "head.norm."),
         (r"mlp_head\.1\.", "head.fc.")], {}),
}
