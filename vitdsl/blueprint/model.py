"""The Blueprint: a whole architecture as pure data, validated by pydantic, round-trippable.

A Blueprint holds what the YAML file says after ``extends`` has been merged; ``$param`` references
are kept as written. :meth:`Blueprint.resolve` picks a variant, applies overrides and expands
``repeat`` and ``stages`` into the flat list of block nodes that the graph builder takes.
"""
from __future__ import annotations

from typing import Any, ClassVar, Mapping

from pydantic import BaseModel, Field, field_validator

from ..blocks import compat as overlays
from ..blocks.shape import InputKind
from .budget import Budget
from .expand import Design, expand
from .items import check_structure
from .kinds import BlueprintBase, register_kind
from .replace import replaced


@register_kind(None)
class Blueprint(BlueprintBase):
    """An architecture: input, parameters, named variants and a list of layers."""

    input: dict[InputKind, list[Any]] = Field(
        description="The input tensor without batch dimension, by kind: image [C, H, W], "
                    "volume [C, T, H, W], tokens [N, D] or vector [D]; images [C, H, W] for lists of "
                    "images of any size up to H×W (packed by patchify). Values may be $params.")
    layers: list[Any] = Field(description="The layers, a chain: blocks, `repeat` and `stages` items.")
    compat: str | None = Field(
        None, description="A compatibility overlay the default variant applies (vit-pytorch: the block defaults "
                          "that reproduce vit-pytorch; see vitdsl/blocks/compat.py). A named variant is clean "
                          "(the papers' defaults) unless its entry sets compat itself.")
    output: str | list[str] | None = Field(
        None, description="Name of the layer whose output the network returns (default: the last layer), "
                          "or a list of names: the network then returns a tuple in that order.")
    budget: Budget | None = Field(
        None, description="Limits the design must keep, checked by validate and build from the shape rules: "
                          "params_max (30M), gflops_max or gmacs_max, optionally at another image size (at).")

    order: ClassVar[tuple[str, ...]] = ("name", "description", "paper", "compat", "input", "params", "variants",
                                        "budget", "layers", "output", "reference")

    @field_validator("input")
    @classmethod
    def _one_input(cls, v):
        if len(v) != 1:
            raise ValueError("give exactly one input, e.g. input: {image: [3, 224, 224]}")
        return v

    @field_validator("layers", mode="before")
    @classmethod
    def _plain_layers(cls, v):
        return _plain(v) if isinstance(v, list) else v

    @field_validator("layers")
    @classmethod
    def _layers_not_empty(cls, v):
        if not v:
            raise ValueError("a blueprint needs at least one layer")
        return v

    def check_loaded(self) -> None:
        for where, name in [(("compat",), self.compat)] + [(("variants", v, "compat"), entry["compat"])
                                                           for v, entry in self.variants.items() if "compat" in entry]:
            if name is not None and (error := overlays.unknown(name, location=self.source.find(where))):
                raise error
        check_structure(self)

    def with_params(self, variant: str | None = None, overrides: Mapping[str, Any] | None = None) -> "Blueprint":
        """As for every kind; a named variant also sets the overlay: its own ``compat``, else none."""
        if variant is None or variant not in self.variants:
            return super().with_params(variant, overrides)  # an unknown variant is refused there
        entry = self.variants[variant]
        chosen = entry.get("compat")
        plain = self.copied({"variants": {**self.variants, variant: {k: v for k, v in entry.items() if k != "compat"}}})
        out = BlueprintBase.with_params(plain, variant, overrides)
        return out.copied({"variants": self.variants, "compat": None if chosen == overlays.NONE else chosen},
                          out.source)

    def overlay(self, name: str | None) -> "Blueprint":
        """This blueprint with the compatibility overlay ``name`` (``"none"``: none), whatever its file says."""
        if error := overlays.unknown(name):
            raise error
        return self.copied({"compat": None if name == overlays.NONE else name})

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "layers": [_plain(item) for item in self.layers]}

    def configured(self, variant: str | None = None, overrides: Mapping[str, Any] | None = None,
                   replace: Mapping[str, Any] | None = None) -> "Blueprint":
        return replaced(self, replace).with_params(variant, overrides)

    def resolve(self, variant: str | None = None, overrides: Mapping[str, Any] | None = None) -> Design:
        """Pick a variant, apply overrides, expand the layers: a :class:`~vitdsl.blueprint.expand.Design`."""
        return expand(self.with_params(variant, overrides))


def _plain(item: Any, as_fields: bool = False) -> Any:
    """Block specs given as pydantic objects in Python become the plain YAML form: a spec as a list
    item becomes ``{block: fields}``, a spec as the value of a block key becomes its fields."""
    if isinstance(item, BaseModel) and hasattr(item, "to_item"):
        (_, fields), = item.to_item().items()
        return fields if as_fields else item.to_item()
    if isinstance(item, dict):
        return {k: _plain(v, as_fields=True) for k, v in item.items()}
    if isinstance(item, list):
        return [_plain(v) for v in item]
    return item
