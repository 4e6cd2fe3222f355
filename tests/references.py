"""The vit-pytorch README examples that the zoo's default variants reproduce."""
from vit_pytorch import SimpleViT, ViT
from vit_pytorch.max_vit import MaxViT

README = {
    "vit": lambda: ViT(image_size=256, patch_size=32, num_classes=1000, dim=1024, depth=6, heads=16,
                       mlp_dim=2048, dropout=0.1, emb_dropout=0.1),
    "simple_vit": lambda: SimpleViT(image_size=256, patch_size=32, num_classes=1000, dim=1024, depth=6,
                                    heads=16, mlp_dim=2048),
    "maxvit": lambda: MaxViT(num_classes=1000, dim_conv_stem=64, dim=96, dim_head=32, depth=(2, 2, 5, 2),
                             window_size=7, mbconv_expansion_rate=4, mbconv_shrinkage_rate=0.25, dropout=0.1),
}

# The README's printed parameter counts are not given; these are what the classes build (and what
# ../shared/reference/vitpytorch_blocks.md records).
PARAMS = {"vit": 54_630_376, "simple_vit": 54_556_648, "maxvit": 79_981_380}
