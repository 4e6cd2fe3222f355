"""ViT and SimpleViT."""
from .common import PATCHIFY, encoder

MAPS = {
    "vit_pytorch.vit.ViT": (
        [(r"pos_embedding$", "pos_embed.pos"), (r"cls_token$", "tokens.cls"), *PATCHIFY, *encoder(),
         (r"mlp_head\.", "head.fc.")], {}),
    "vit_pytorch.simple_vit.SimpleViT": (
        [*PATCHIFY, *encoder(), (r"linear_head\.", "head.fc.")], {}),
}
