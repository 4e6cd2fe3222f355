from vit_pytorch.regionvit import RegionViT

from . import Case


def readme(**kw):
    args = dict(dim=(64, 128, 256, 512), depth=(2, 2, 8, 2), window_size=7, num_classes=1000,
                tokenize_local_3_conv=False, use_peg=False)
    return RegionViT(**{**args, **kw})


CASES = [
    Case("regionvit", readme, 12_749_176),
    # the 3-conv local tokenizer and the position generator, on a smaller model
    Case("regionvit", lambda: readme(dim=(32, 64, 96, 128), depth=(1, 2, 2, 1), tokenize_local_3_conv=True),
         None, overrides={"dims": [32, 64, 96, 128], "depths": [1, 2, 2, 1], "tokenizer": "3conv"}, batch=1),
    Case("regionvit", lambda: readme(dim=(32, 64, 96, 128), depth=(1, 2, 2, 1), use_peg=True),
         None, overrides={"dims": [32, 64, 96, 128], "depths": [1, 2, 2, 1], "use_peg": True}, batch=1),
]
