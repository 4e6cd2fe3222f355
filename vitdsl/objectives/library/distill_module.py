"""The distillation module (torch)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ... import torchfile
from ...errors import VitdslError
from ..module import Objective

HOW = ("pass one to vitdsl.build('objectives/distill', teacher=model), assign objective.teacher = model, or name "
       "a teacher blueprint in the objective's 'teacher' setting")


class Distill(Objective):
    def __init__(self, design, encoder, parts, spec, teacher: nn.Module | None = None):
        super().__init__(design, encoder, parts)
        self.temperature, self.alpha, self.hard = spec.temperature, spec.alpha, spec.hard
        self.teacher_eval = spec.teacher_eval
        self.classes = design.encoder.outputs[0].features
        if teacher is not None and spec.teacher is not None:
            raise VitdslError("distill: the blueprint names a teacher, and build got another",
                              hint="leave out the 'teacher' setting, or assign objective.teacher = model after "
                                   "building")
        if teacher is not None and not isinstance(teacher, nn.Module):
            raise VitdslError(f"distill: the teacher must be an nn.Module, got {type(teacher).__name__}",
                              hint="wrap a function in an nn.Module whose forward returns the class logits")
        if teacher is None and spec._teacher is not None:
            from ...graph.network import compile_graph

            teacher = compile_graph(spec._teacher)
            weights = spec._weights
            if weights is not None and not any(p.is_meta for p in teacher.parameters()):
                _load(teacher, weights)
        self.register_module("teacher", teacher)

    def forward(self, images: torch.Tensor, labels: torch.Tensor, temperature: float | None = None,
                alpha: float | None = None) -> torch.Tensor:
        alpha = self.alpha if alpha is None else alpha
        t = self.temperature if temperature is None else temperature
        teacher_logits = self._teach(images)
        out = self.encoder(images)
        logits, distill_logits = out if isinstance(out, tuple) else (out, out)
        loss = F.cross_entropy(logits, labels)
        if self.hard:
            distill_loss = F.cross_entropy(distill_logits, teacher_logits.argmax(dim=-1))
        else:
            distill_loss = F.kl_div(F.log_softmax(distill_logits / t, dim=-1), F.softmax(teacher_logits / t, dim=-1),
                                    reduction="batchmean") * t ** 2
        return loss * (1 - alpha) + distill_loss * alpha

    def _teach(self, images: torch.Tensor) -> torch.Tensor:
        if self.teacher is None:
            raise VitdslError("distill: there is no teacher to learn from", hint=HOW)
        if self.teacher_eval and self.teacher.training:
            self.teacher.eval()
        with torch.no_grad():
            out = self.teacher(images)
        want = (images.shape[0], self.classes)
        if not isinstance(out, torch.Tensor):
            raise VitdslError(f"distill: the teacher returned a {type(out).__name__}; it must return one tensor of "
                              "class logits", hint="wrap it in an nn.Module whose forward returns the logits")
        if tuple(out.shape) != want:
            raise VitdslError(f"distill: the teacher returned logits of shape {tuple(out.shape)}; the student "
                              f"scores {want[1]} classes for {want[0]} images, so it must return {want}",
                              hint="the teacher and the student must score the same classes")
        return out

    def extra_repr(self) -> str:
        return (f"{super().extra_repr()}, temperature={self.temperature}, alpha={self.alpha}, hard={self.hard}, "
                f"teacher_eval={self.teacher_eval}")


WEIGHTS = torchfile.Kind("distill: teacher weights file", "a weights file",
                         "save the teacher with vitdsl.save, or its state_dict with torch.save")


def _state_dict(path) -> dict:
    """The teacher's weights from a vitdsl checkpoint or a saved state_dict, read as untrusted input."""
    if not path.is_file():
        raise VitdslError(f"distill: no teacher weights at '{path}'", hint="'weights' is a path relative to the "
                          "objective blueprint's file")
    data = torchfile.load(path, WEIGHTS)
    if isinstance(data, dict) and "state_dict" in data:
        data = data["state_dict"]
    if not isinstance(data, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                             for k, v in data.items()):
        raise torchfile.error(path, "holds no state_dict (a mapping of names to tensors)", WEIGHTS, WEIGHTS.hint)
    return data


def _load(teacher: nn.Module, path) -> None:
    try:
        teacher.load_state_dict(_state_dict(path))
    except RuntimeError as e:
        detail = str(e).splitlines()[1].strip() if len(str(e).splitlines()) > 1 else str(e)
        raise VitdslError(f"distill: the teacher weights at '{path}' do not fit the teacher blueprint: {detail}",
                          hint="save them from a model built from the same blueprint and settings") from None
