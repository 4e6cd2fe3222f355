"""DINO and EsViT around the README's encoders (a ViT or a CvT): the student's network under ``encoder.``
and its teacher copy under ``teacher.encoder.``, the classifier head (held, never run) left out; the
projectors' MLP (Linear, GELU, …, L2Norm, Linear) onto the part's ``hidden.I.fc`` heads and ``logits``."""
from .common import UNUSED, under
from .levit_cvt import MAPS as LEVIT_CVT
from .vit import MAPS as VIT

# the two encoders' rules do not overlap, so one list serves either
NETS = [(r"mlp_head\.", UNUSED), (r"to_logits\.2\.", UNUSED), *VIT["vit_pytorch.vit.ViT"][0],
        *LEVIT_CVT["vit_pytorch.cvt.CvT"][0]]
# net.2i: the i-th hidden Linear (a GELU follows each); the one odd index with weights is the last Linear
PROJECTOR = [*((rf"net\.{2 * i}\.", f"hidden.{i}.fc.fc.") for i in range(64)), (r"net\.\d*[13579]\.", "logits.fc.")]


def wrapper(projectors: dict[str, str]) -> list:
    """The rules of a wrapper whose NetWrapper holds ``net`` and the projectors (theirs → our part names)."""
    rules = under(NETS, r"net\.", "encoder.")
    for ours, held in (("", "student_encoder"), ("teacher.", "teacher_encoder")):
        rules += under(NETS, rf"{held}\.net\.", f"{ours}encoder.")
        for theirs, part in projectors.items():
            rules += under(PROJECTOR, rf"{held}\.{theirs}\.", f"{ours}{part}.")
    centres = r"(last_)?teacher_(view_|region_)?centers$"
    return [(centres, r"\g<0>"), *rules]


MAPS = {
    "vit_pytorch.dino.Dino": (wrapper({"projector": "projector"}), {}),
    "vit_pytorch.es_vit.EsViTTrainer": (wrapper({"view_projector": "projector",
                                                 "region_projector": "region_projector"}), {}),
}
