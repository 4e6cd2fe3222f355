"""The DINO module (torch), and what EsViT shares with it: the views, the frozen moving-average teacher and
the centres."""
from __future__ import annotations

import copy
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..augment import byol_augment, random_resized_crop
from ..module import Objective

Fn = Callable[[torch.Tensor], torch.Tensor]


class Teacher(nn.Module):
    """A frozen copy of the student's networks (same names), moved towards them by ``update``."""

    def __init__(self, students: dict[str, nn.Module]):
        super().__init__()
        for name, module in students.items():
            # the checked graph and blueprint are read-only: the copy shares them
            shared = {id(v): v for v in (getattr(module, "graph", None), getattr(module, "blueprint", None)) if v}
            self.add_module(name, copy.deepcopy(module, shared))
        self.requires_grad_(False)

    @torch.no_grad()
    def update(self, students: dict[str, nn.Module], decay: float) -> None:
        for name, student in students.items():
            for old, new in zip(getattr(self, name).parameters(), student.parameters()):
                old.copy_(old * decay + (1 - decay) * new)  # vit-pytorch's very arithmetic (the same rounding)

    @torch.no_grad()
    def reset(self, students: dict[str, nn.Module]) -> None:
        for name, student in students.items():
            getattr(self, name).load_state_dict(student.state_dict())


class SelfDistillation(Objective):
    """Two augmented views, a local and a global crop of each; the student's networks (``students``), a
    ``teacher`` copy of them and one centre buffer (``NAME_centers``, (1, K)) per compared output."""

    students: tuple[str, ...] = ("encoder", "projector")

    def __init__(self, design, encoder, parts, spec, centres: dict[str, int], augment: Fn | None = None,
                 augment2: Fn | None = None, local_crop: Fn | None = None, global_crop: Fn | None = None):
        super().__init__(design, encoder, parts)
        self.spec = spec
        self.student_temp, self.teacher_temp = spec.student_temp, spec.teacher_temp
        self.moving_average_decay = spec.moving_average_decay
        self.center_moving_average_decay = spec.center_moving_average_decay
        self.teacher = Teacher(self._students())
        for name, k in centres.items():
            self.register_buffer(f"{name}_centers", torch.zeros(1, k))
            self.register_buffer(f"last_{name}_centers", torch.zeros(1, k))
        self.centres = tuple(centres)
        # plain attributes, not submodules: they hold no weights (and the defaults are made on first use)
        self.views = {"augment": augment, "augment2": augment if augment2 is None else augment2,
                      "local_crop": local_crop, "global_crop": global_crop}
        self.defaults: dict[str, Fn] = {}

    def _students(self) -> dict[str, nn.Module]:
        return {name: getattr(self, name) for name in self.students}

    def view(self, name: str) -> Fn:
        """An augmentation or crop; BYOL's colour jitter, grey, flip and blur (kornia) and random resized
        crops to the encoder's size where none was passed. ``augment2`` defaults to ``augment``."""
        if self.views[name] is not None:
            return self.views[name]
        if name not in self.defaults:
            size = tuple(self.encoder.input_shape[1:])
            make = {"augment": byol_augment, "augment2": byol_augment,
                    "local_crop": lambda: random_resized_crop(size, (0.05, self.spec.local_upper_crop_scale)),
                    "global_crop": lambda: random_resized_crop(size, (self.spec.global_lower_crop_scale, 1.0))}
            self.defaults[name] = make[name]()
        return self.defaults[name]

    def crops(self, images: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """The local (student) and global (teacher) crops of the two views, in vit-pytorch's order."""
        one, two = self.view("augment")(images), self.view("augment2")(images)
        local, glob = self.view("local_crop"), self.view("global_crop")
        return [local(one), local(two)], [glob(one), glob(two)]

    def projections(self, images: torch.Tensor) -> tuple:
        """The student's projections of both local crops and the teacher's (no gradient) of both global ones."""
        (local_one, local_two), (global_one, global_two) = self.crops(images)
        student = self.project(self, local_one), self.project(self, local_two)
        with torch.no_grad():
            teacher = self.project(self.teacher, global_one), self.project(self.teacher, global_two)
        return student, teacher

    def encode(self, networks: nn.Module, images: torch.Tensor) -> torch.Tensor:
        """The embedding layer's output of the student (``self``) or the teacher."""
        encoder = networks.encoder
        return encoder.run(images, encoder.paths[0], self.roles.embedding)

    def temperatures(self, student_temp: float | None, teacher_temp: float | None) -> tuple[float, float]:
        return (self.student_temp if student_temp is None else student_temp,
                self.teacher_temp if teacher_temp is None else teacher_temp)

    @torch.no_grad()
    def update_moving_average(self) -> None:
        """Move the teacher towards the student and each centre towards the last step's mean teacher logits."""
        self.teacher.update(self._students(), self.moving_average_decay)
        beta = self.center_moving_average_decay
        for name in self.centres:
            centre, last = getattr(self, f"{name}_centers"), getattr(self, f"last_{name}_centers")
            centre.copy_(centre * beta + (1 - beta) * last)

    def reset_moving_average(self) -> None:
        """Make the teacher a copy of the student again (the centres stay)."""
        self.teacher.reset(self._students())


def teacher_probs(logits: torch.Tensor, centres: torch.Tensor, temp: float) -> torch.Tensor:
    return ((logits.detach() - centres) / temp).softmax(dim=-1)


class Dino(SelfDistillation):
    def __init__(self, design, encoder, parts, spec, **views):
        k = design.parts["projector"].output.features
        super().__init__(design, encoder, parts, spec, {"teacher": k}, **views)

    def project(self, networks: nn.Module, images: torch.Tensor) -> torch.Tensor:
        return networks.projector(self.encode(networks, images).flatten(1))

    def forward(self, images: torch.Tensor, student_temp: float | None = None,
                teacher_temp: float | None = None) -> torch.Tensor:
        (student_one, student_two), (teacher_one, teacher_two) = self.projections(images)
        s_temp, t_temp = self.temperatures(student_temp, teacher_temp)

        def loss(teacher, student):
            return -(teacher_probs(teacher, self.teacher_centers, t_temp)
                     * F.log_softmax(student / s_temp, dim=-1)).sum(dim=-1).mean()

        self.last_teacher_centers.copy_(torch.cat((teacher_one, teacher_two)).mean(dim=0))
        return (loss(teacher_one, student_two) + loss(teacher_two, student_one)) / 2
