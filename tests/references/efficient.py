from vit_pytorch.efficient import ViT
from vit_pytorch.vit import Transformer

from . import Case


def _efficient(image_size: int = 2048, depth: int = 12) -> ViT:
    # the README wraps a Nyströmformer; the blueprint's default transformer is vit-pytorch's own stack
    return ViT(dim=512, image_size=image_size, patch_size=32, num_classes=1000,
               transformer=Transformer(dim=512, depth=depth, heads=8, dim_head=64, mlp_dim=2048))


CASES = [
    # the README's 2048² input (4,192,744 in the wrapper) takes a minute on CPU: its count is checked in
    # tests/test_zoo_distill.py; the outputs at 256² with the default 12 layers
    Case("efficient_vit", lambda: _efficient(256), 39_939_560, overrides={"image_size": 256}),
    Case("efficient_vit", lambda: _efficient(256, 2), 8_431_080,
         overrides={"image_size": 256, "depth": 2}),
]
