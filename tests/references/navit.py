from vit_pytorch.na_vit import NaViT

from . import Case


def navit(dropout=0.1):
    return NaViT(image_size=256, patch_size=32, num_classes=1000, dim=1024, depth=6, heads=16, mlp_dim=2048,
                 dropout=dropout, emb_dropout=dropout, token_dropout_prob=0.1)


def readme_images(x):
    """The README's five images of different sizes, cut from a batch of two 256×256 images."""
    a, b = x[0], x[1]
    return [[a, b[:, :128, :128].clone()], [a[:, :128].clone(), b[:, :, :128].clone()], [b[:, 64:128].clone()]]


def flat_images(x):
    return [image for sample in readme_images(x) for image in sample]


CASES = [
    # README: 5 images in 3 samples -> (5, 1000)
    Case("navit", navit, 58_766_336, call_reference=lambda m, x: m(readme_images(x)),
         call_ours=lambda m, x: m(readme_images(x))),
    # README: a flat list grouped into samples of at most 64 tokens
    Case("navit", navit, 58_766_336, overrides={"max_seq_len": 64},
         call_reference=lambda m, x: m(flat_images(x), group_images=True, group_max_seq_len=64),
         call_ours=lambda m, x: m(flat_images(x))),
    # a plain (B, C, H, W) batch: one image per sample (and no dropout, which changes nothing in eval)
    Case("navit", lambda: navit(dropout=0.0), 58_766_336, overrides={"dropout": 0.0, "emb_dropout": 0.0},
         call_reference=lambda m, x: m([[image] for image in x])),
]
