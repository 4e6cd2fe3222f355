from vit_pytorch.learnable_memory_vit import Adapter, ViT

from . import Case


def vit():
    return ViT(image_size=256, patch_size=16, num_classes=1000, dim=1024, depth=6, heads=8, mlp_dim=2048,
               dropout=0.1, emb_dropout=0.1)


CASES = [
    Case("learnable_memory_vit", vit, 39_880_168),
    # the reference returns the adapter's logits; ours returns (backbone logits, adapter logits)
    Case("learnable_memory_vit", lambda: Adapter(vit=vit(), num_memories_per_layer=5, num_classes=2), 39_916_010,
         variant="adapter", call_ours=lambda m, x: m(x)[1]),
]
