"""ATS ViT: the ViT encoder without a final norm; token sampling has no parameters."""
from .common import PATCHIFY, encoder

MAPS = {
    "vit_pytorch.ats_vit.ViT": (
        [(r"pos_embedding$", "pos_embed.pos"), (r"cls_token$", "tokens.cls"), *PATCHIFY, *encoder(final_norm=False),
         (r"mlp_head\.0\.", "head.norm."), (r"mlp_head\.1\.", "head.fc.")], {}),
}
