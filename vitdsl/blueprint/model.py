"""The Blueprint: a whole architecture as pure data, validated by pydantic, round-trippable.

A Blueprint holds what the YAML file says after ``extends`` has been merged; ``$param`` references
are kept as written. :meth:`Blueprint.resolve` picks a variant, applies overrides and expands
``repeat`` and ``stages`` into the flat list of block nodes that the graph builder takes.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator

from .source import SourceMap

Kind = Literal["image", "volume", "tokens", "vector", "images"]


class Blueprint(BaseModel):
    """An architecture: input, parameters, named variants and a list of layers."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="Short name of the architecture (the zoo file name for zoo blueprints).")
    description: str = Field("", description="One line shown by `vitdsl list`.")
    paper: str | None = Field(None, description="The paper this blueprint follows.")
    input: dict[Kind, list[Any]] = Field(
        description="The input tensor without batch dimension, by kind: image [C, H, W], "
                    "volume [C, T, H, W], tokens [N, D] or vector [D]; images [C, H, W] for lists of "
                    "images of any size up to H×W (packed by patchify). Values may be $params.")
    params: dict[str, Any] = Field(default_factory=dict,
                                   description="Named values that layers refer to as $name.")
    variants: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="Named parameter sets (model sizes); each overrides params.")
    layers: list[Any] = Field(description="The layers, a chain: blocks, `repeat` and `stages` items.")
    output: str | list[str] | None = Field(
        None, description="Name of the layer whose output the network returns (default: the last layer), "
                          "or a list of names: the network then returns a tuple in that order.")
    reference: str | None = Field(None, description="The class this blueprint reproduces exactly (same "
                                  "parameters and outputs after weight import), e.g. vit_pytorch.vit.ViT.")

    _source: SourceMap = PrivateAttr(default_factory=SourceMap)
    _file: str | None = PrivateAttr(default=None)
    _roots: tuple | None = PrivateAttr(default=None)  # the folders its files may come from (see confine)

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

    # -- identity and round trip ----------------------------------------------------------------
    def __eq__(self, other: object) -> bool:
        return isinstance(other, Blueprint) and self.to_dict() == other.to_dict()

    __hash__ = None  # mutable data

    @property
    def source(self) -> SourceMap:
        return self._source

    @property
    def file(self) -> str | None:
        return self._file

    def to_dict(self) -> dict[str, Any]:
        data = self.model_dump(mode="python", exclude_defaults=True)
        data["layers"] = [_plain(item) for item in self.layers]
        return {"name": self.name, **{k: v for k, v in data.items() if k != "name"}}

    def dump(self) -> str:
        """YAML text that loads back into an equal Blueprint."""
        return yaml.safe_dump(self.to_dict(), sort_keys=False, default_flow_style=None, width=100)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(self.dump())

    def resolve(self, variant: str | None = None, overrides: dict[str, Any] | None = None):
        """Pick a variant, apply overrides, expand the layers: a :class:`~vitdsl.blueprint.expand.Design`."""
        from .expand import expand

        return expand(self, variant=variant, overrides=overrides)


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
