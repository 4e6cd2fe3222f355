"""MP3's ViT (queries by ``to_q``, keys and values by ``to_kv``: the two parts of our one qkv) and the MP3
wrapper around it."""
from .common import PATCHIFY, UNUSED, encoder, under

MP3_VIT = [*PATCHIFY, *encoder(final_norm=False), (r"linear_head\.0\.", "head.norm."),
           (r"linear_head\.1\.", "head.fc.")]

MAPS = {
    "vit_pytorch.mp3.ViT": (MP3_VIT, {}),
    # the ViT's classifier head is held but never run by MP3
    "vit_pytorch.mp3.MP3": (
        [(r"vit\.linear_head\.", UNUSED), *under(MP3_VIT, r"vit\.", "encoder."),
         (r"mlp_head\.0\.", "head.to_positions.norm."), (r"mlp_head\.1\.", "head.to_positions.fc.")], {}),
}
