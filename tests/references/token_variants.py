from . import readme

# CaiT and XCiT drop whole layers even in eval mode (a vit-pytorch bug); vitdsl drops them only while
# training, so eval parity is against the reference with layer_dropout=0 (the blueprint keeps 0.05).
CASES = [readme("deepvit", 54_632_104), readme("cait", 121_839_592), readme("xcit", 122_141_864)]
