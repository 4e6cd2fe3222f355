from vit_pytorch.pit import PiT
from vit_pytorch.t2t import T2TViT

from . import Case

CASES = [
    Case("t2t_vit", lambda: T2TViT(dim=512, image_size=224, depth=5, heads=8, mlp_dim=512, num_classes=1000,
                                   t2t_layers=((7, 4), (3, 2), (3, 2))), 23_465_986),
    Case("pit", lambda: PiT(image_size=224, patch_size=14, dim=256, num_classes=1000, depth=(3, 3, 3), heads=16,
                            mlp_dim=2048, dropout=0.1, emb_dropout=0.1), 47_499_752),
]
