"""MP3's ViT (queries by ``to_q``, keys and values by ``to_kv``: the two parts of our one qkv)."""
from .common import PATCHIFY, encoder

MP3_VIT = [*PATCHIFY, *encoder(final_norm=False), (r"linear_head\.0\.", "head.norm."),
           (r"linear_head\.1\.", "head.fc.")]

MAPS = {
    "vit_pytorch.mp3.ViT": (MP3_VIT, {}),
}
