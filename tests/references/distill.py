from torch import nn
from vit_pytorch.distill import DistillableViT, DistillWrapper

from . import Case


def _wrapper(mlp_layernorm: bool = False) -> DistillWrapper:
    v = DistillableViT(image_size=256, patch_size=32, num_classes=1000, dim=1024, depth=6, heads=8, mlp_dim=2048,
                       dropout=0.1, emb_dropout=0.1)
    # the teacher is only called by the loss; a parameter-free one keeps the counts the student's own
    return DistillWrapper(teacher=nn.Identity(), student=v, temperature=3, alpha=0.5, hard=False,
                          mlp_layernorm=mlp_layernorm)


def _student(m, x):
    logits, token = m.student(x, distill_token=m.distillation_token)
    return logits, m.distill_mlp(token)


CASES = [
    Case("distill_vit", _wrapper, 43_073_488, call_reference=_student),
    Case("distill_vit", lambda: _wrapper(mlp_layernorm=True), 43_075_536, call_reference=_student,
         overrides={"distill_norm": "layer"}),
]
