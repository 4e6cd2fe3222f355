from vit_pytorch.vit_for_small_dataset import SPT
from vit_pytorch.vit_for_small_dataset import ViT as SmallDataViT
from vit_pytorch.vit_with_patch_merger import PatchMerger
from vit_pytorch.vit_with_patch_merger import ViT as PatchMergerViT

from . import Case

CASES = [
    Case("small_data_vit", lambda: SmallDataViT(image_size=256, patch_size=16, num_classes=1000, dim=1024, depth=6,
                                                heads=16, mlp_dim=2048, dropout=0.1, emb_dropout=0.1), 55_612_910),
    Case("spt", lambda: SPT(dim=1024, patch_size=16, channels=3), 3_940_864),
    Case("patch_merger_vit", lambda: PatchMergerViT(image_size=256, patch_size=16, num_classes=1000, dim=1024, depth=12,
                                                    heads=8, patch_merge_layer=6, patch_merge_num_tokens=8,
                                                    mlp_dim=2048, dropout=0.1, emb_dropout=0.1), 77_687_272),
    Case("patch_merger", lambda: PatchMerger(dim=1024, num_tokens_out=8), 10_240),
    # the paper sizes, against the reference at the same sizes
    Case("small_data_vit", lambda: SmallDataViT(image_size=32, patch_size=4, num_classes=100, dim=192, depth=9,
                                                heads=12, dim_head=16, mlp_dim=384), 2_747_149, variant="cifar100",
         compat="vit-pytorch"),
    Case("patch_merger_vit", lambda: PatchMergerViT(image_size=224, patch_size=16, num_classes=1000, dim=768, depth=12,
                                                    heads=12, patch_merge_layer=6, patch_merge_num_tokens=8,
                                                    mlp_dim=3072), 86_549_992, variant="base",
         compat="vit-pytorch"),
    # options off the README path: mean pooling over cls + patches; a merger early in a small stack
    Case("small_data_vit", lambda: SmallDataViT(image_size=32, patch_size=4, num_classes=100, dim=192, depth=9,
                                                heads=12, dim_head=16, mlp_dim=384, pool="mean"), 2_747_149,
         variant="cifar100", overrides={"pool": "mean"}, compat="vit-pytorch"),
    Case("patch_merger_vit", lambda: PatchMergerViT(image_size=32, patch_size=8, num_classes=10, dim=64, depth=4,
                                                    heads=2, patch_merge_layer=1, patch_merge_num_tokens=3,
                                                    mlp_dim=128), 213_706,
         overrides={"image_size": 32, "patch": 8, "dim": 64, "depth": 4, "heads": 2, "mlp": 128, "classes": 10,
                    "merge_layer": 1, "merge_tokens": 3, "dropout": 0.0, "emb_dropout": 0.0}),
]
