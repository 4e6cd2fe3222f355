from vit_pytorch.mp3 import ViT

from . import Case

CASES = [
    Case("mp3_vit", lambda: ViT(num_classes=1000, image_size=256, patch_size=8, dim=1024, depth=6, heads=8,
                                mlp_dim=2048, dropout=0.1), 39_025_000),
    # non-square images and patches, small
    Case("mp3_vit", lambda: ViT(num_classes=10, image_size=(32, 48), patch_size=(8, 16), dim=32, depth=2, heads=2,
                                dim_head=8, mlp_dim=64), None,
         overrides=dict(image_height=32, image_width=48, patch_height=8, patch_width=16, classes=10, dim=32, depth=2,
                        heads=2, dim_head=8, mlp=64, dropout=0.0)),
]
