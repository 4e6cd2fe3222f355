from vit_pytorch import SimpleViT, ViT

from . import Case

CASES = [
    Case("vit", lambda: ViT(image_size=256, patch_size=32, num_classes=1000, dim=1024, depth=6, heads=16,
                            mlp_dim=2048, dropout=0.1, emb_dropout=0.1), 54_630_376),
    Case("simple_vit", lambda: SimpleViT(image_size=256, patch_size=32, num_classes=1000, dim=1024, depth=6,
                                         heads=16, mlp_dim=2048), 54_556_648),
]
