"""Learnable-memory ViT and its Adapter (one blueprint; the Adapter is its ``adapter`` form).

The Adapter holds the ViT under ``vit.``, which maps onto the same backbone paths; its memories are one
(depth, M, dim) tensor, split onto each layer's ``attn.memories``; its attention mask is derived.
"""
from ..transfer import DERIVED, Rule
from .common import PATCHIFY, encoder


def _vit(src: str = "") -> list[Rule]:
    return [(rf"{src}pos_embedding$", "pos_embed.pos"), (rf"{src}cls_token$", "tokens.cls"),
            *[(src + pattern, to) for pattern, to in PATCHIFY],
            *encoder(rf"{src}transformer\.", final_norm=False),
            (rf"{src}mlp_head\.0\.", "head.norm."), (rf"{src}mlp_head\.1\.", "head.fc.")]


MAPS = {
    "vit_pytorch.learnable_memory_vit.ViT": (_vit(), {}),
    "vit_pytorch.learnable_memory_vit.Adapter": (
        [*_vit(r"vit\."), (r"memory_cls_token$", "memory_cls.cls"),
         (r"memories_per_layer$", "blocks.*.attn.memories"), (r"attn_mask$", DERIVED),
         (r"mlp_head\.0\.", "adapter_head.norm."), (r"mlp_head\.1\.", "adapter_head.fc.")], {}),
}
