from vit_pytorch.cait import CaiT
from vit_pytorch.deepvit import DeepViT
from vit_pytorch.xcit import XCiT

from . import Case

# CaiT and XCiT drop whole layers even in eval mode (a vit-pytorch bug); vitdsl drops them only while
# training, so eval parity is against the reference with layer_dropout=0 (the blueprint keeps 0.05).
CASES = [
    Case("deepvit", lambda: DeepViT(image_size=256, patch_size=32, num_classes=1000, dim=1024, depth=6, heads=16,
                                    mlp_dim=2048, dropout=0.1, emb_dropout=0.1), 54_632_104),
    Case("cait", lambda: CaiT(image_size=256, patch_size=32, num_classes=1000, dim=1024, depth=12, cls_depth=2,
                              heads=16, mlp_dim=2048, dropout=0.1, emb_dropout=0.1, layer_dropout=0.0),
         121_839_592),
    Case("xcit", lambda: XCiT(image_size=256, patch_size=32, num_classes=1000, dim=1024, depth=12, cls_depth=2,
                              heads=16, mlp_dim=2048, dropout=0.1, emb_dropout=0.1, layer_dropout=0.0,
                              local_patch_kernel_size=3), 122_141_864),
]
