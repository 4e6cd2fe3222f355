"""Knowledge distillation (Hinton et al., 2015; DeiT, Touvron et al., 2021): the student learns the labels
with its class logits and a teacher's predictions with its distillation logits (DeiT's distillation token
and head; a student with one output distils through its class logits)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, PrivateAttr

from ...errors import VitdslError
from ..roles import Finder, Roles
from ..spec import EncoderRef, ObjectiveSpec, register


class TeacherRef(EncoderRef):
    """A teacher built from a blueprint (its weights loaded from ``weights`` when given)."""

    weights: str | None = Field(None, description="A state_dict file for the teacher (torch.save of a state_dict, "
                                "or a vitdsl.save file), relative to this file; without it the teacher starts "
                                "from fresh weights: load yours into objective.teacher before training.")


@register
class DistillSpec(ObjectiveSpec):
    """The student (the encoder) returns class logits, then distillation logits (as ``distill_vit``), or
    class logits alone; the loss is (1 - alpha) · cross-entropy(class logits, labels) + alpha · the distillation
    loss: soft, the KL divergence between the tempered distributions (× T², batch mean), or hard, the
    cross-entropy to the teacher's argmax. The teacher is any nn.Module taking the images and returning
    class logits, passed to ``vitdsl.build(..., teacher=model)`` or named here as a blueprint; it runs
    without gradients and never trains. It is held as the submodule ``teacher`` (so ``.to()`` moves it and
    ``state_dict()`` holds it, as in vit-pytorch), so ``parameters()`` lists its tensors too: they never get a
    gradient, and optimizers skip such tensors."""

    kind = "distill"
    reference = "vit_pytorch.distill.DistillWrapper"

    temperature: float = Field(1.0, gt=0, description="T: logits are divided by T before the soft loss, which "
                               "is then scaled by T².")
    alpha: float = Field(0.5, ge=0, le=1, description="Weight of the distillation loss; the label loss weighs "
                         "1 - alpha.")
    hard: bool = Field(False, description="Distil to the teacher's argmax (cross-entropy) instead of its "
                       "tempered distribution.")
    teacher: str | TeacherRef | None = Field(None, description="A teacher blueprint (a zoo name or path, or "
                                             "{blueprint, variant, set, weights}); otherwise pass the teacher "
                                             "module to vitdsl.build.")
    teacher_eval: bool = Field(True, description="Run the teacher in eval mode always (dropout off, "
                               "batch-norm statistics frozen); false lets it follow train()/eval(), as "
                               "vit-pytorch does.")

    _teacher: Any = PrivateAttr(None)  # the teacher's checked graph
    _teacher_dir: Any = PrivateAttr(None)
    _weights: Any = PrivateAttr(None)  # the teacher's weights file, checked against the blueprint's folders

    def roles(self, finder: Finder) -> Roles:
        graph = finder.graph
        name = graph.design.blueprint.name
        outs = graph.outputs
        if len(outs) > 2 or any(s.kind != "vector" for s in outs):
            got = ", ".join(f"{p} ({s})" for p, s in zip(graph.design.outputs, outs))
            raise finder.error(f"the student '{name}' must return class logits, and optionally distillation "
                               f"logits, as vectors; it returns {got}",
                               "use distill_vit, or end the encoder in heads on its pooled tokens")
        if len({s.features for s in outs}) != 1:
            widths = " and ".join(str(s.features) for s in outs)
            raise finder.error(f"the student's class and distillation logits must score the same classes, "
                               f"but they have {widths}", "give both heads the same classes")
        if self.teacher is not None:
            self._teacher = self._check_teacher(finder)
        return Roles()  # the student runs whole

    def _check_teacher(self, finder: Finder):
        from ...blueprint import confine
        from ...blueprint.load import find, load
        from ...graph.build import build_graph

        ref = TeacherRef(blueprint=self.teacher) if isinstance(self.teacher, str) else self.teacher
        loc = finder.location
        here = Path(loc.file).parent if loc and confine.is_file(Path(loc.file)) else None
        self._teacher_dir = here
        try:
            base = find(ref.blueprint, relative_to=here) if isinstance(ref.blueprint, str) else None
            if base is None:
                from ...blueprint.load import from_data

                base = from_data(ref.blueprint, file=loc.file if loc else None)
            bp = load(base, ref.variant, ref.set or None, ref.replace or None)
        except VitdslError as e:
            raise VitdslError(f"distill: teacher: {e.message}", location=e.location or loc, path=e.path,
                              hint=e.hint) from None
        bp = bp.as_network(lambda why: finder.error(f"the teacher {why}; the teacher must be a network that "
                                                    "returns class logits"))
        try:
            self._weights = self.teacher_weights()
        except VitdslError as e:
            raise e.at(loc) from None
        graph = build_graph(bp.resolve())
        student = finder.graph
        if graph.input != student.input:
            raise finder.error(f"the teacher '{bp.name}' takes {graph.input}, but the student's images are "
                               f"{student.input}", "give the teacher the student's input size")
        out, classes = graph.outputs, student.outputs[0].features
        if len(out) != 1 or out[0].kind != "vector" or out[0].features != classes:
            got = ", ".join(str(s) for s in out)
            raise finder.error(f"the teacher '{bp.name}' returns {got}; it must return the student's {classes} "
                               "class logits", "give the teacher one head with the student's classes")
        return graph

    def teacher_weights(self) -> Path | None:
        """The teacher's weights file, found next to the objective's file, inside the folders a blueprint may
        read (checked when the blueprint is resolved, like its other files)."""
        ref = self.teacher
        if not isinstance(ref, TeacherRef) or ref.weights is None:
            return None
        from ...blueprint import confine

        confine.check_name(ref.weights, "teacher weights")
        path = Path(ref.weights)
        if not path.is_absolute() and self._teacher_dir is not None and confine.is_file(self._teacher_dir / path):
            path = self._teacher_dir / path
        return confine.checked(path, ref.weights, "teacher weights file")

    def module(self, design, encoder, parts: dict, **kwargs):
        from .distill_module import Distill

        return Distill(design, encoder, parts, self, **kwargs)
