import torch
from vit_pytorch.cvt import CvT
from vit_pytorch.levit import LeViT

from . import Case


def random_norms(model: torch.nn.Module) -> torch.nn.Module:
    """Fresh norms are (close to) the identity, and LeViT's output BN starts at γ = 0, which would hide
    the whole attention branch: give every norm random affine weights (and BN running statistics)."""
    with torch.no_grad():
        for m in model.modules():
            if "Norm" not in type(m).__name__:
                continue
            for name, p in m.named_parameters(recurse=False):
                p.uniform_(0.5, 1.5) if name in ("weight", "g") else p.normal_(0, 0.1)
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 1.5)
                m.num_batches_tracked.fill_(3)
    return model


def levit(**kw):
    return lambda: random_norms(LeViT(image_size=224, num_classes=1000, mlp_mult=2, **kw))


def cvt(**kw):
    return lambda: random_norms(CvT(num_classes=1000, **kw))


README_LEVIT = dict(stages=3, dim=(256, 384, 512), depth=4, heads=(4, 6, 8), dropout=0.1)
README_CVT = dict(s1_emb_dim=64, s1_emb_kernel=7, s1_emb_stride=4, s1_proj_kernel=3, s1_kv_proj_stride=2, s1_heads=1,
                  s1_depth=1, s1_mlp_mult=4, s2_emb_dim=192, s2_emb_kernel=3, s2_emb_stride=2, s2_proj_kernel=3,
                  s2_kv_proj_stride=2, s2_heads=3, s2_depth=2, s2_mlp_mult=4, s3_emb_dim=384, s3_emb_kernel=3,
                  s3_emb_stride=2, s3_proj_kernel=3, s3_kv_proj_stride=2, s3_heads=4, s3_depth=10, s3_mlp_mult=4,
                  dropout=0.)

CASES = [
    Case("levit", levit(**README_LEVIT), 17_348_972),
    Case("levit_distill", levit(**README_LEVIT, num_distill_classes=1000), 17_861_972),
    Case("cvt", cvt(**README_CVT), 17_970_216),
    # paper sizes, through vit-pytorch's constructor
    Case("levit", levit(dim=(128, 256, 384), depth=(2, 3, 4), heads=(4, 6, 8), dim_key=16, dim_value=32),
         6_984_358, variant="128s", compat="vit-pytorch"),
    Case("cvt", cvt(s3_heads=6), 19_936_296, variant="13", compat="vit-pytorch"),
]
