from vit_pytorch import SimpleViT, ViT

from . import Case

CASES = [
    Case("vit", lambda: ViT(image_size=256, patch_size=32, num_classes=1000, dim=1024, depth=6, heads=16,
                            mlp_dim=2048, dropout=0.1, emb_dropout=0.1), 54_630_376),
    Case("simple_vit", lambda: SimpleViT(image_size=256, patch_size=32, num_classes=1000, dim=1024, depth=6,
                                         heads=16, mlp_dim=2048), 54_556_648),
    # the FAQ: non-square images and patches
    Case("vit", lambda: ViT(image_size=(96, 64), patch_size=(16, 32), num_classes=10, dim=64, depth=2, heads=4,
                            dim_head=16, mlp_dim=128), None,
         overrides=dict(image_height=96, image_width=64, patch_height=16, patch_width=32, classes=10, dim=64,
                        depth=2, heads=4, dim_head=16, mlp=128, dropout=0.0, emb_dropout=0.0)),
    Case("simple_vit", lambda: SimpleViT(image_size=(64, 128), patch_size=(16, 32), num_classes=10, dim=64, depth=2,
                                         heads=4, dim_head=16, mlp_dim=128), None,
         overrides=dict(image_height=64, image_width=128, patch_height=16, patch_width=32, classes=10, dim=64,
                        depth=2, heads=4, dim_head=16, mlp=128)),
]
