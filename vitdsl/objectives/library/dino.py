"""DINO (Caron et al., 2021): self-distillation without labels. A student (the encoder up to its embedding
layer, then a projector to K logits) sees two local crops of two augmented views; a teacher, the moving
average of the student, sees two global crops; each student view learns the other view's centred,
sharpened teacher distribution (cross-entropy). The teacher and the centre move by ``update_moving_average``."""
from __future__ import annotations

from typing import Any

from pydantic import Field

from ...blocks.shape import Shape
from ...errors import VitdslError, suggest
from ..roles import Finder, Roles
from ..spec import ObjectiveSpec, register


class SelfDistillation(ObjectiveSpec):
    """Settings DINO and EsViT share (vit-pytorch's arguments of the same names)."""

    embedding: str | None = Field(None, description="The encoder layer whose output the student projects, as a "
                                  "path or the name of a repeat or stages item (its last layer).")
    student_temp: float = Field(0.9, gt=0, description="Temperature of the student's softmax.")
    teacher_temp: float = Field(0.04, gt=0, description="Temperature of the teacher's softmax (the paper anneals "
                                "it from 0.04 to 0.07; set the module's teacher_temp, or pass it to forward).")
    local_upper_crop_scale: float = Field(0.4, ge=0.05, le=1, description="Largest share of the image a local "
                                          "(student) crop covers; the smallest is 0.05.")
    global_lower_crop_scale: float = Field(0.5, gt=0, le=1, description="Smallest share of the image a global "
                                           "(teacher) crop covers; the largest is 1.")
    moving_average_decay: float = Field(0.9, ge=0, le=1, description="Decay of the teacher's moving average of "
                                        "the student's weights.")
    center_moving_average_decay: float = Field(0.9, ge=0, le=1, description="Decay of the moving average of the "
                                               "teacher's mean logits (the centre).")

    def image(self, finder: Finder) -> Shape:
        shape = finder.graph.input
        if shape.kind != "image":
            raise finder.error(f"the encoder takes {shape}; {self.kind} augments and crops images")
        return shape

    def default_embedding(self, finder: Finder) -> str:
        """The layer feeding the classifier (the last layer when the encoder ends in none)."""
        last = finder.graph.output_paths[0]
        return finder.node(last).inputs[0] if finder.has(last, "classifier") else last

    def roles(self, finder: Finder) -> Roles:
        self.image(finder)
        path = finder.layer(self.embedding, last=True) if self.embedding else self.default_embedding(finder)
        return Roles(embedding=path, keep=finder.ancestors(path))


VIEWS = ("augment", "augment2", "local_crop", "global_crop")


def views(kind: str, kwargs: dict) -> dict:
    """The augmentation and crop functions passed to build, checked."""
    for name, fn in kwargs.items():
        if name not in VIEWS:
            raise VitdslError(f"{kind} takes {', '.join(VIEWS)}, not '{name}'",
                              hint=suggest(name, VIEWS, "each a function of a batch of images"))
        if fn is not None and not callable(fn):
            raise VitdslError(f"{kind}: {name} must be a function of a batch of images, got {type(fn).__name__}")
    return kwargs


def expect(graph, name: str, takes: Shape) -> int:
    """Check a part's input and that it keeps the input's kind (and token count); its output width."""
    got, out = graph.input, graph.output
    if got.kind != takes.kind or tuple(got.dims) != tuple(takes.dims):
        raise VitdslError(f"part '{name}' takes {got}, but the objective feeds it {takes}", path=name,
                          hint=f"write its input as {{{takes.kind}: [{', '.join(map(str, takes.dims))}]}}")
    if out.kind != takes.kind or out.dims[:-1] != takes.dims[:-1]:
        each = "a vector of logits" if takes.kind == "vector" else f"logits for each of its {takes.dims[0]} tokens"
        raise VitdslError(f"part '{name}' gives {out}; the objective needs {each}", path=name,
                          hint="end it with '- head: {classes: $K}'")
    return out.features


@register
class DinoSpec(SelfDistillation):
    """The student projects the embedding layer's output (flattened) to K logits with ``projector``; its
    two local crops learn the teacher's distributions of the other view's global crop. The teacher (an EMA
    copy of encoder and projector, frozen) is held as ``teacher``, the centre as the buffer ``teacher_centers``."""

    kind = "dino"
    reference = "vit_pytorch.dino.Dino"
    parts = {"projector": "projects the embedding to K logits: vector [$embedding_dim] → vector [K]"}
    provides = {"embedding_dim": "size of the embedding layer's output (flattened)"}

    def values(self, finder: Finder, roles: Roles) -> dict[str, Any]:
        return {"embedding_dim": finder.graph.shape(roles.embedding).numel}

    def check_parts(self, finder: Finder, roles: Roles, parts: dict) -> None:
        if parts["projector"] is None:
            raise VitdslError("part 'projector' cannot be switched off: DINO compares its logits", path="projector")
        expect(parts["projector"], "projector", Shape.vector(self.values(finder, roles)["embedding_dim"]))

    def module(self, design, encoder, parts: dict, **kwargs):
        from .dino_module import Dino

        return Dino(design, encoder, parts, self, **views(self.kind, kwargs))
