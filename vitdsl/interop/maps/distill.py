"""DistillWrapper around a DistillableViT: the student as vit.ViT, plus the distillation token and head.
The teacher has no home in the blueprint; the parity cases use a parameter-free one."""
from .common import PATCHIFY, encoder

_STUDENT = [(r"student\.pos_embedding$", "pos_embed.pos"), (r"student\.cls_token$", "tokens.cls"),
            *[(r"student\." + p, t) for p, t in PATCHIFY], *encoder(r"student\.transformer\."),
            (r"student\.mlp_head\.", "head.fc.")]

MAPS = {
    "vit_pytorch.distill.DistillWrapper": (
        [*_STUDENT, (r"distillation_token$", "distill_token.cls"), (r"distill_mlp\.0\.", "distill_head.norm."),
         (r"distill_mlp\.1\.", "distill_head.fc.")], {}),
}
