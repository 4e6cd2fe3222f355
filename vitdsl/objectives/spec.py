"""An objective blueprint as pure data: an encoder blueprint, the objective's settings and the objective's
own networks (decoder, projector, heads), each a layer list from the one block library.

    name: mae
    encoder: {blueprint: vit, set: {dim: 1024}}     # a zoo name, a path (relative to this file) or inline
    objective:
      mae: {masking_ratio: $masking_ratio}
    params: {masking_ratio: 0.75, decoder_dim: 512}
    parts:
      decoder:
        input: {tokens: [$patches, $decoder_dim]}    # the objective tells parts what it knows ($patches)
        layers: [...]
"""
from __future__ import annotations

from abc import abstractmethod
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from ..blocks.base import check_number, field_leaves
from ..blocks.shape import InputKind
from ..blueprint.model import _plain

REGISTRY: dict[str, type["ObjectiveSpec"]] = {}


class EncoderRef(BaseModel):
    """Which blueprint the objective trains, and how to set it up."""

    model_config = ConfigDict(extra="forbid")

    blueprint: str | dict[str, Any] = Field(
        description="A zoo name (vit), a blueprint file (relative to this file) or an inline blueprint mapping.")
    variant: str | None = Field(None, description="A named variant of the encoder blueprint.")
    set: dict[str, Any] = Field(default_factory=dict, description="Encoder parameters to override; values may "
                                "be $params of the objective blueprint.")
    replace: dict[str, Any] = Field(default_factory=dict, description="Encoder layer items to replace, by name "
                                    "(as --replace).")


class Part(BaseModel):
    """One of the objective's own networks: an input and a layer list, as in a blueprint."""

    model_config = ConfigDict(extra="forbid")

    input: dict[InputKind, list[Any]] = Field(description="The part's input without batch dimension, e.g. "
                                         "{tokens: [$patches, $decoder_dim]}; may use the objective's values.")
    layers: list[Any] = Field(description="The layers: blocks, repeat, stages and parallel items.")
    output: str | list[str] | None = Field(None, description="Which layer(s) the part returns (default: the last).")
    when: bool | str = Field(True, description="Leave the part out when false (e.g. a projection between equal "
                             "widths): the objective then passes its input through unchanged.")

    @field_validator("layers", mode="before")
    @classmethod
    def _plain_layers(cls, v):
        return _plain(v) if isinstance(v, list) else v


class ObjectiveSpec(BaseModel):
    """The settings of one objective kind (one pydantic model per kind, as for blocks). Subclasses say
    which parts they need (``parts``) and what they tell the parts (``provides``); the work is done by
    their methods, on the checked encoder graph, without torch (except ``module``)."""

    model_config = ConfigDict(extra="forbid", defer_build=True)  # built when a blueprint uses the kind

    @field_validator("*", mode="before")
    @classmethod
    def _numbers_are_numbers(cls, v: Any, info: ValidationInfo) -> Any:
        check_number(v, field_leaves(cls, info.field_name))  # as block fields
        return v

    kind: ClassVar[str]
    reference: ClassVar[str | None] = None
    parts: ClassVar[dict[str, str]] = {}  # name → what the part must do (for errors and docs)
    optional_parts: ClassVar[frozenset[str]] = frozenset()
    provides: ClassVar[dict[str, str]] = {}  # value name → meaning, usable in parts as $name

    @abstractmethod
    def roles(self, encoder) -> "Any":
        """Which encoder layers the objective runs, and how (a ``roles.Roles``); raises when it cannot."""

    def values(self, encoder, roles) -> dict[str, Any]:
        """The values the parts can use ($patches, $encoder_dim, …)."""
        return {}

    def check_parts(self, encoder, roles, parts: dict) -> None:
        """Raise when a part does not fit (input and output shapes); ``parts`` maps name → Graph or None."""

    def own_tensors(self, design) -> dict[str, tuple[int, ...]]:
        """The objective's own trained tensors (name → shape: its mask token …), known without torch so that
        ``vitdsl list`` counts them without building anything; the module makes exactly these."""
        return {}

    @abstractmethod
    def module(self, design, encoder, parts: dict, **kwargs):
        """The nn.Module whose forward returns the loss."""


def register(cls: type[ObjectiveSpec]) -> type[ObjectiveSpec]:
    REGISTRY[cls.kind] = cls
    return cls


class PatchRoles(BaseModel):
    """Settings of objectives that feed the encoder's body patch tokens themselves (MAE, SimMIM, MPP,
    MP3): which layers cut the patches, add their positions and form the body. Found by what the blocks
    declare they are (``BlockSpec.capabilities``) when left out."""

    patchify: str | None = Field(None, description="The encoder's patchify layer (default: its first layer "
                                 "that cuts an image into patch tokens).")
    positions: str | None = Field(None, description="The encoder's position layer (default: the first layer "
                                  "after patchify that adds positions, if any).")
    body: list[str] | None = Field(None, min_length=2, max_length=2,
                                   description="First and last encoder layer of the transformer body, as paths or "
                                   "names of repeat items (default: from after the positions, and after any "
                                   "special tokens there, to the layer before the first that reads the tokens out: a "
                                   "pool or head).")
