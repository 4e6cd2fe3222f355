from vit_pytorch.crossformer import CrossFormer
from vit_pytorch.nest import NesT

from . import Case
from .levit_cvt import random_norms


def crossformer(**kw):
    return lambda: random_norms(CrossFormer(num_classes=1000, **kw))


def nest(**kw):
    return lambda: random_norms(NesT(image_size=224, patch_size=4, num_classes=1000, num_hierarchies=3, **kw))


README_CROSSFORMER = {"dim": (64, 128, 256, 512), "depth": (2, 2, 8, 2), "global_window_size": (8, 4, 2, 1),
                      "local_window_size": 7}

CASES = [
    Case("crossformer", crossformer(**README_CROSSFORMER), 28_780_740),
    Case("nest", nest(dim=96, heads=3, block_repeats=(2, 2, 8)), 16_520_692),
]

CASES += [  # paper sizes, through vit-pytorch's constructor
    Case("crossformer", crossformer(dim=(96, 192, 384, 768), depth=(1, 1, 3, 1), global_window_size=7), None,
         variant="small", compat="vit-pytorch"),
    Case("nest", nest(dim=128, heads=4, block_repeats=(2, 2, 20)), None, variant="base",
         compat="vit-pytorch"),
]
