import torch
from vit_pytorch.ats_vit import ViT

from . import Case

SEED = 1234


def _seeded(call):
    torch.manual_seed(SEED)
    return call()


# The reference samples tokens in eval too: each forward starts from the same seed, and both the
# plain call (logits) and return_sampled_token_ids=True (logits, ids) are compared.
CASES = [
    Case("ats_vit", lambda: ViT(image_size=256, patch_size=16, num_classes=1000, dim=1024, depth=6,
                                max_tokens_per_depth=(256, 128, 64, 32, 16, 8), heads=16, mlp_dim=2048,
                                dropout=0.1, emb_dropout=0.1), 52_463_080,
         call_reference=lambda m, x: (_seeded(lambda: m(x)),
                                      _seeded(lambda: m(x, return_sampled_token_ids=True))),
         call_ours=lambda m, x: (_seeded(lambda: m(x))[0], _seeded(lambda: m(x))),
         seed=SEED, batch=4),
]
