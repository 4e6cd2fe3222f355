from vit_pytorch.cross_vit import CrossViT
from vit_pytorch.parallel_vit import ViT as ParallelViT

from . import Case

CASES = [
    Case("cross_vit", lambda: CrossViT(image_size=256, num_classes=1000, depth=4, sm_dim=192, sm_patch_size=16,
                                       sm_enc_depth=2, sm_enc_heads=8, sm_enc_mlp_dim=2048, lg_dim=384,
                                       lg_patch_size=64, lg_enc_depth=3, lg_enc_heads=8, lg_enc_mlp_dim=2048,
                                       cross_attn_depth=2, cross_attn_heads=8, dropout=0.1, emb_dropout=0.1),
         55_180_176),
    Case("parallel_vit", lambda: ParallelViT(image_size=256, patch_size=16, num_classes=1000, dim=1024, depth=6,
                                             heads=8, mlp_dim=2048, num_parallel_branches=2, dropout=0.1,
                                             emb_dropout=0.1), 77_674_472),
    # non-square images and patches, three branches
    Case("parallel_vit", lambda: ParallelViT(image_size=(64, 96), patch_size=(16, 8), num_classes=10, dim=64,
                                             depth=2, heads=4, dim_head=16, mlp_dim=128, num_parallel_branches=3),
         None, overrides=dict(image_height=64, image_width=96, patch_height=16, patch_width=8, classes=10, dim=64,
                              depth=2, heads=4, dim_head=16, mlp=128, branches=3)),
]
