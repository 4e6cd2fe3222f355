"""What every kind of blueprint shares, and the registry that tells the loader which kind a document is.

A plain blueprint (an architecture) and an objective blueprint (a loss around an encoder) are read,
compared, dumped, given variants and overrides the same way; they differ in what resolving, checking,
compiling and tracing mean. Those operations are declared here and carried out by the layers that can:
the graph, trace and objective machinery sits above this package, so a kind's ``operations`` are
installed by whoever implements them (the package API for plain blueprints, ``vitdsl.objectives`` for
objectives) when it is imported — ``import vitdsl`` imports the first, and the second once the loader meets
an objective blueprint (``register_kind_later``).
"""
from __future__ import annotations

from abc import abstractmethod
from pathlib import Path
from typing import Any, Callable, ClassVar, Mapping, Protocol

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError

from ..errors import Location, VitdslError, suggest
from . import confine, limits
from .invalid import Wording, convert
from .source import SourceMap

TOP = Wording(unknown="unknown key '{key}' in the blueprint", keys="blueprint keys", invalid="'{field}': {msg}",
              missing="missing required key '{field}'")


class Operations(Protocol):
    """What the package does with one kind of blueprint (see the module docstring)."""

    def check(self, bp: "BlueprintBase") -> Any: ...  # everything checked, without torch
    # the nn.Module; with check_memory, weights that cannot fit on the device are refused first
    def compile(self, checked: Any, device: Any, check_memory: bool, **kwargs: Any) -> Any: ...
    def trace(self, bp: "BlueprintBase", batch: int) -> Any: ...  # the shape-traced summary
    def report(self, bp: "BlueprintBase", checked: Any) -> list[str]: ...  # `vitdsl validate`'s lines


class BlueprintBase(BaseModel):
    """The fields, source positions, identity and round trip every blueprint kind has."""

    model_config = ConfigDict(extra="forbid", defer_build=True)  # validators built on a kind's first document

    name: str = Field(description="Short name (the zoo file name for zoo blueprints).")
    description: str = Field("", description="One line shown by `vitdsl list`.")
    paper: str | None = Field(None, description="The paper this blueprint follows.")
    reference: str | None = Field(None, description="The class this blueprint reproduces exactly (same "
                                  "parameters and outputs after weight import), e.g. vit_pytorch.vit.ViT.")
    params: dict[str, Any] = Field(default_factory=dict, description="Named values the rest refers to as $name.")
    variants: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="Named parameter sets (model sizes); each overrides params.")

    order: ClassVar[tuple[str, ...]] = ()  # the keys in the order a dump writes them (as people write them)
    operations: ClassVar[Operations | None] = None

    _source: SourceMap = PrivateAttr(default_factory=SourceMap)
    _file: str | None = PrivateAttr(default=None)
    _roots: tuple | None = PrivateAttr(default=None)  # the folders its files may come from (see confine)

    # -- reading ---------------------------------------------------------------------------------
    @classmethod
    def from_document(cls, data: dict, source: SourceMap, file: str | None) -> "BlueprintBase":
        """Validated from a document's data; an error points at its place in ``source``."""
        check_data(data, source)
        try:
            bp = cls.model_validate(data)
        except ValidationError as e:
            raise convert(e, cls, TOP, source) from None
        bp._source, bp._file, bp._roots = source, file, confine.active()
        bp.check_loaded()
        return bp

    def check_loaded(self) -> None:
        """Checks that need no parameter values, run once the document is read."""

    def copied(self, update: dict[str, Any], source: SourceMap | None = None) -> "BlueprintBase":
        """A copy with fields changed that keeps where it came from."""
        out = self.model_copy(update=update)
        out._source, out._file, out._roots = source or self._source, self._file, self._roots
        return out

    # -- identity and round trip ----------------------------------------------------------------
    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and self.to_dict() == other.to_dict()

    __hash__ = None  # mutable data

    @property
    def source(self) -> SourceMap:
        return self._source

    @property
    def file(self) -> str | None:
        return self._file

    def to_dict(self) -> dict[str, Any]:
        data = self.model_dump(mode="python", exclude_defaults=True)
        return {k: data[k] for k in sorted(data, key=lambda k: self.order.index(k) if k in self.order else 99)}

    def dump(self) -> str:
        """YAML text that loads back into an equal blueprint."""
        return yaml.safe_dump(self.to_dict(), sort_keys=False, default_flow_style=None, width=100)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(self.dump())

    # -- set-up ----------------------------------------------------------------------------------
    def with_params(self, variant: str | None = None, overrides: Mapping[str, Any] | None = None):
        """A variant's and the overrides' values written into ``params``; an error in such a value points at
        the variant's line, or names the override."""
        params, source = dict(self.params), self.source
        if variant is not None:
            if variant not in self.variants:
                raise VitdslError(f"blueprint '{self.name}' has no variant '{variant}'",
                                  hint=suggest(variant, self.variants, "variants") if self.variants
                                  else "this blueprint defines no variants")
            for k, v in self.variants[variant].items():
                if k not in params:
                    raise VitdslError(f"variant '{variant}' sets '{k}', which is not a parameter",
                                      location=self.source.find(("variants", variant, k)),
                                      hint=suggest(k, params, "parameters"))
                params[k] = v
                source = source.moved(("variants", variant, k), ("params", k))
        for k, v in (overrides or {}).items():
            if k not in params:
                raise VitdslError(f"cannot set '{k}': blueprint '{self.name}' has no such parameter",
                                  hint=suggest(k, params, "parameters"))
            params[k] = v
            source = source.placed(("params", k), Location(f"override '{k}'", 0, 0))
        if params == self.params:
            return self
        check_data(params)
        return self.copied({"params": params}, source)

    @abstractmethod  # each kind replaces items where its layers are
    def configured(self, variant: str | None = None, overrides: Mapping[str, Any] | None = None,
                   replace: Mapping[str, Any] | None = None) -> "BlueprintBase":
        """The blueprint with a variant, overrides and layer replacements (``replace={name: item}``) applied."""

    @abstractmethod  # a plain design or an objective design
    def resolve(self, variant: str | None = None, overrides: Mapping[str, Any] | None = None) -> Any:
        """Variant and overrides applied, every parameter resolved: the design its graphs are built from."""

    def overlay(self, name: str | None) -> "BlueprintBase":
        """This blueprint with the compatibility overlay ``name`` (see ``vitdsl.blocks.compat``); kinds
        without layers of their own refuse it."""
        raise VitdslError(f"a {type(self).__name__} takes no compat overlay: its encoder blueprint has its own",
                          hint="set compat in the encoder's blueprint, or load the encoder with compat")

    def as_network(self, refuse: Callable[[str], VitdslError]) -> "BlueprintBase":
        """This blueprint where a network is needed (an encoder, a teacher); ``refuse(why)`` is raised by kinds
        that are no network."""
        return self

    # -- what the layers above do with it ----------------------------------------------------------
    def _operations(self) -> Operations:
        if self.operations is None:
            raise RuntimeError(f"no operations for {type(self).__name__}: import vitdsl, which installs them")
        return self.operations

    def check(self) -> Any:
        """Everything checked without torch: the checked graph, or an objective's checked design."""
        return self._operations().check(self)

    def build(self, device: Any = None, check_memory: bool = True, **kwargs: Any) -> Any:
        """The nn.Module (torch is imported here); ``kwargs`` are what the kind's module takes besides."""
        return self._operations().compile(self.check(), device, check_memory, **kwargs)

    def trace(self, batch: int = 1) -> Any:
        return self._operations().trace(self, batch)

    def report(self, checked: Any) -> list[str]:
        return self._operations().report(self, checked)


KINDS: dict[str, type[BlueprintBase]] = {}  # the key that marks a document of that kind → its class
PLAIN: list[type[BlueprintBase]] = []  # the kind of a document that holds no such key


def register_kind(key: str | None) -> Callable[[type[BlueprintBase]], type[BlueprintBase]]:
    """Class decorator: documents holding ``key`` are of this kind (``None``: the plain kind)."""
    def add(cls: type[BlueprintBase]) -> type[BlueprintBase]:
        if key is None:
            PLAIN[:] = [cls]
        else:
            KINDS[key] = cls
        return cls

    return add


LATER: dict[str, Callable[[], Any]] = {}  # a key → what registers its kind, called on the first document holding it


def register_kind_later(key: str, install: Callable[[], Any]) -> None:
    """Documents holding ``key`` are of the kind ``install()`` registers, called when the loader first meets
    one: ``import vitdsl`` then leaves out the machinery of kinds a session never reads."""
    LATER[key] = install


def kind_of(data: dict) -> type[BlueprintBase]:
    for key in [key for key in LATER if key in data]:
        LATER.pop(key)()
    return next((cls for key, cls in KINDS.items() if key in data), PLAIN[0])


def check_data(data: Any, source: SourceMap | None = None) -> None:
    """Refuse data that no YAML file could hold within the limits: built in Python or carried by a
    checkpoint, it skipped the reader's checks (depth, size, key and value types). Numbers are checked
    by the fields that take them."""
    source = source or SourceMap()
    count, stack = 0, [(data, ())]
    while stack:
        value, path = stack.pop()
        count += 1
        where = source.find(path)
        if count > limits.YAML_NODES or len(path) > limits.YAML_DEPTH:
            raise VitdslError(f"the blueprint holds more than {limits.YAML_NODES:,} values or nests deeper than "
                              f"{limits.YAML_DEPTH} levels", location=where)
        if isinstance(value, dict):
            for k, v in value.items():
                if not isinstance(k, str):
                    raise VitdslError(f"a mapping key must be a name, got {k!r}", location=where)
                stack.append((v, path + (k,)))
        elif isinstance(value, (list, tuple)):
            stack.extend((v, path + (i,)) for i, v in enumerate(value))
        elif isinstance(value, str) and len(value) > limits.FILE_BYTES:
            raise VitdslError(f"a text of {len(value):,} characters is longer than a blueprint may be", location=where)
        elif not isinstance(value, (str, int, float, bool, type(None))) and not hasattr(value, "to_item"):
            raise VitdslError(f"a blueprint holds plain data; {type(value).__name__} is not", location=where)
