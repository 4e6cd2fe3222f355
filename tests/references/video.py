from vit_pytorch.cct_3d import CCT, cct_7
from vit_pytorch.simple_vit_3d import SimpleViT
from vit_pytorch.vit_3d import ViT
from vit_pytorch.vivit import ViViT

from . import Case

VIVIT = {"image_size": 128, "frames": 16, "image_patch_size": 16, "frame_patch_size": 2, "num_classes": 1000,
         "dim": 1024, "spatial_depth": 6, "temporal_depth": 6, "heads": 8, "mlp_dim": 2048}
SMALL = {"image_size": 32, "frames": 8, "image_patch_size": 8, "frame_patch_size": 2, "num_classes": 10, "dim": 64,
         "spatial_depth": 2, "temporal_depth": 2, "heads": 4, "dim_head": 16, "mlp_dim": 128}
SMALL_OURS = {"image_size": 32, "frames": 8, "patch": 8, "classes": 10, "dim": 64, "spatial_depth": 2,
              "temporal_depth": 2, "heads": 4, "dim_head": 16, "mlp": 128}

CASES = [
    Case("vit_3d", lambda: ViT(image_size=128, frames=16, image_patch_size=16, frame_patch_size=2, num_classes=1000,
                               dim=1024, depth=6, heads=8, mlp_dim=2048, dropout=0.1, emb_dropout=0.1), 40_930_280),
    Case("simple_vit_3d", lambda: SimpleViT(image_size=128, frames=16, image_patch_size=16, frame_patch_size=2,
                                            num_classes=1000, dim=1024, depth=6, heads=8, mlp_dim=2048), 40_397_800),
    Case("cct_3d", lambda: CCT(img_size=224, num_frames=8, embedding_dim=384, n_conv_layers=2, frame_kernel_size=3,
                               kernel_size=7, stride=2, padding=3, pooling_kernel_size=3, pooling_stride=2,
                               pooling_padding=1, num_layers=14, num_heads=6, mlp_ratio=3., num_classes=1000,
                               positional_embedding="learnable"), 25_321_385, batch=1),
    # cct_3d.cct_7 with its fixed 'sine' positions (a buffer), on a small video
    Case("cct_3d", lambda: cct_7(img_size=32, num_frames=4, num_classes=10), None, variant="cct_7",
         overrides={"image_height": 32, "image_width": 32, "frames": 4, "classes": 10}),
    # the README imports vivit.ViT, which 1.26.11 calls ViViT; default variant: factorized_encoder
    Case("vivit", lambda: ViViT(**VIVIT), 78_730_216),
    Case("vivit", lambda: ViViT(**VIVIT, variant="factorized_self_attention"), None,
         variant="factorized_self_attention"),
    # mean pooling (no cls tokens) in both variants, on a small video
    Case("vivit", lambda: ViViT(**SMALL, pool="mean"), None, overrides={**SMALL_OURS, "pool": "mean"}),
    Case("vivit", lambda: ViViT(**SMALL, pool="mean", variant="factorized_self_attention"), None,
         overrides={**SMALL_OURS, "pool": "mean", "factorization": "self_attention"}),
]
