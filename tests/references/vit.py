from . import readme
from .branches import FAQ_OURS

CASES = [
    readme("vit", 54_630_376),
    readme("simple_vit", 54_556_648),
    # the FAQ: non-square images and patches
    readme("vit", None, overrides=dict(image_height=96, image_width=64, patch_height=16, patch_width=32, classes=10,
                                       **FAQ_OURS, dropout=0.0, emb_dropout=0.0)),
    readme("simple_vit", None, overrides=dict(image_height=64, image_width=128, patch_height=16, patch_width=32,
                                              classes=10, **FAQ_OURS)),
]
