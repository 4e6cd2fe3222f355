from vit_pytorch.mobile_vit import MobileViT
from vit_pytorch.sep_vit import SepViT

from . import Case
from .levit_cvt import random_norms

XS = dict(dims=[96, 120, 144], channels=[16, 32, 48, 48, 64, 64, 80, 80, 96, 96, 384])
# vit-pytorch hard-wires 4 heads of 8 and MLPs of [2, 4, 4] × the width; the paper's variants have heads of
# width / 4 and MLPs of 2 × (timm's mobilevit_*)
VIT_PYTORCH_HEADS = {"dim_head": 8, "mlp_mults": [2, 4, 4]}
LITE = dict(dim=32, dim_head=32, heads=(1, 2, 4, 8), depth=(1, 2, 6, 2), window_size=7, dropout=0.1)


def mobilevit(**kw):
    return lambda: random_norms(MobileViT(image_size=(256, 256), num_classes=1000, **kw))


def sepvit(**kw):
    return lambda: random_norms(SepViT(num_classes=1000, **kw))


CASES = [
    Case("mobilevit", mobilevit(**XS), 2_382_944),
    Case("sepvit", sepvit(**LITE), 4_014_728),
    # the paper's other sizes, through vit-pytorch's constructor
    Case("mobilevit", mobilevit(dims=[64, 80, 96], channels=[16, 16, 24, 24, 48, 48, 64, 64, 80, 80, 320],
                                expansion=2), 1_331_472, variant="xxs", overrides=VIT_PYTORCH_HEADS,
         compat="vit-pytorch"),
    Case("mobilevit", mobilevit(dims=[144, 192, 240],
                                channels=[16, 32, 64, 64, 96, 96, 128, 128, 160, 160, 640]), 5_636_720, variant="s",
         overrides=VIT_PYTORCH_HEADS, compat="vit-pytorch"),
    Case("sepvit", sepvit(dim=96, heads=(3, 6, 12, 24), depth=(1, 2, 6, 2)), None, variant="tiny",
         compat="vit-pytorch"),
    # 448×448: four windows in the last stage too, so every stage runs the cross-window step
    Case("sepvit", sepvit(**LITE), None, overrides={"image_size": 448}, batch=1),
]
