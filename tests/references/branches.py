from . import readme

FAQ_OURS = dict(dim=64, depth=2, heads=4, dim_head=16, mlp=128)

CASES = [
    readme("cross_vit", 55_180_176),
    readme("parallel_vit", 77_674_472),
    # non-square images and patches, three branches
    readme("parallel_vit", None, overrides=dict(image_height=64, image_width=96, patch_height=16, patch_width=8,
                                                classes=10, **FAQ_OURS, branches=3)),
]
