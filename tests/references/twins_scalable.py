import torch
from vit_pytorch.scalable_vit import ScalableViT
from vit_pytorch.twins_svt import TwinsSVT

from . import Case


def random_norms(model: torch.nn.Module) -> torch.nn.Module:
    """Fresh channel LayerNorms are the identity: give them random affine weights, so the import is
    tested on them too."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith((".g", ".b")) or name.startswith("mlp_head.1."):
                p.uniform_(0.5, 1.5) if name.endswith((".g", ".weight")) else p.normal_(0, 0.1)
    return model


README_TWINS = dict(num_classes=1000, s1_emb_dim=64, s1_patch_size=4, s1_local_patch_size=7, s1_global_k=7, s1_depth=1,
                    s2_emb_dim=128, s2_patch_size=2, s2_local_patch_size=7, s2_global_k=7, s2_depth=1,
                    s3_emb_dim=256, s3_patch_size=2, s3_local_patch_size=7, s3_global_k=7, s3_depth=5,
                    s4_emb_dim=512, s4_patch_size=2, s4_local_patch_size=7, s4_global_k=7, s4_depth=4,
                    peg_kernel_size=3, dropout=0.)
README_SCALABLE = dict(num_classes=1000, dim=64, heads=(2, 4, 8, 16), depth=(2, 2, 20, 2), ssa_dim_key=(40, 40, 40, 32),
                       reduction_factor=(8, 4, 2, 1), window_size=(64, 32, None, None), dropout=0.1)


def twins(**kw):
    return lambda: random_norms(TwinsSVT(**{**README_TWINS, **kw}))


def scalable(**kw):
    return lambda: random_norms(ScalableViT(**{**README_SCALABLE, **kw}))


CASES = [
    # one image for the large README models; the smaller paper-size cases run a batch of two
    Case("twins_svt", twins(), 252_025_096, batch=1),
    Case("scalable_vit", scalable(), 75_917_544, batch=1),
    # paper sizes, through vit-pytorch's constructor
    # (vit-pytorch's heads are 8 × 64 wherever the paper's are 32 wide)
    Case("twins_svt", twins(s1_global_k=8, s2_global_k=4, s3_global_k=2, s4_global_k=1, s1_depth=0, s2_depth=0,
                            s3_depth=4, s4_depth=1), None, variant="small", overrides={"heads": 8, "dim_head": 64},
         compat="vit-pytorch"),
    Case("scalable_vit", scalable(depth=(1, 1, 10, 1), window_size=7), None, variant="small",
         compat="vit-pytorch"),
]
