"""DistillWrapper onto the distill objective: the student (the zoo map for distill_vit) under ``encoder.``,
the teacher's tensors onto ``teacher.`` as they are. Not in ``MAPS``: the class already maps onto the zoo's
distill_vit, so :func:`import_wrapper` applies these rules to an objective."""
from .common import under
from .distill import MAPS as DISTILL

RULES = [*under(DISTILL["vit_pytorch.distill.DistillWrapper"][0], "", "encoder."), (r"teacher\.", "teacher.")]


def import_wrapper(objective, wrapper) -> dict[str, str]:
    """Copy a vit-pytorch DistillWrapper's weights (student, distillation token and head, teacher) into a
    built distill objective, strictly; the key map (reference key → ours)."""
    from ..transfer import import_state_dict

    return import_state_dict(objective, wrapper.state_dict(), RULES, {}, source="vit-pytorch")
