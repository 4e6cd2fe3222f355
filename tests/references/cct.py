from vit_pytorch.cct import CCT, cct_7, cct_14

from . import Case

CASES = [
    Case("cct", lambda: CCT(img_size=(224, 448), embedding_dim=384, n_conv_layers=2, kernel_size=7, stride=2,
                            padding=3, pooling_kernel_size=3, pooling_stride=2, pooling_padding=1, num_layers=14,
                            num_heads=6, mlp_ratio=3., num_classes=1000, positional_embedding="learnable"),
         22_442_537),
    # the README's second example: 56×56 = 3136 tokens, so one image is enough
    Case("cct", lambda: cct_14(img_size=224, n_conv_layers=1, kernel_size=7, stride=2, padding=3,
                               pooling_kernel_size=3, pooling_stride=2, pooling_padding=1, num_classes=1000,
                               positional_embedding="learnable"),
         22_339_049, variant="cct_14", overrides={"kernel": 7, "pos": "learned"}, batch=1),
    # the small variants at CIFAR size, with the fixed 'sine' positions (a frozen parameter) and none
    Case("cct", lambda: cct_7(img_size=32, num_classes=10), 3_760_139, variant="cct_7",
         overrides={"image_height": 32, "image_width": 32, "classes": 10}),
    Case("cct", lambda: cct_7(img_size=(32, 48), num_classes=10, n_conv_layers=2, positional_embedding="none"),
         3_836_875, variant="cct_7",
         overrides={"image_height": 32, "image_width": 48, "classes": 10, "conv_layers": 2, "pos": "none"}),
]
