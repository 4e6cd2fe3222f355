"""What every block is: a pydantic spec with a shape rule, a parameter count, a FLOP count and a
``build`` that makes its ``nn.Module``. Specs never import torch at module level, so a whole
blueprint validates (schema, wiring, every shape rule) without it.

FLOPs follow ``torch.utils.flop_counter``: 2 × multiply-accumulates of matrix products and
convolutions, for a batch of one; norms, activations and additions are not counted.
"""
from __future__ import annotations

import math
import types
from typing import Annotated, Any, ClassVar, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from ..errors import ShapeError, VitdslError, suggest
from .registry import LIBRARY, Registry
from .shape import Shape

# name -> spec class; the library's spec modules are imported as their blocks are first looked up (see registry)
REGISTRY: dict[str, type["BlockSpec"]] = Registry(LIBRARY)

# What a block can be, for whoever looks for a layer by what it does rather than by its name (the
# objectives: MAE embeds patches with the encoder's "patchify" layer). A block declares the words that
# hold for it in ``capabilities``; a word promises the methods listed with it.
CAPABILITIES: dict[str, str] = {
    "patchify": "cuts an image into patch tokens: the spec's patch_dim(image) gives the values per patch, "
                "the module's cut(images) the (B, N, values) patches and project(patches) their tokens",
    "positions": "adds position information to the tokens: objectives that add the patch tokens' positions "
                 "themselves read the module's table pos, (rows, width) with the special tokens' rows first "
                 "(no pos, or None, for no positions)",
    "special-tokens": "adds special tokens to the sequence: class, distillation or register tokens",
    "readout": "reads the tokens out: a pool, an attention pool or a head, where an encoder's body ends",
    "classifier": "gives class logits from the features before it",
    "attention": "mixes the tokens by attention: queries attend to keys and values",
    "context": "can attend from its tokens to a context of other tokens: the module's takes_context is true "
               "and forward(x, context=c) takes the keys and values from c",
}
NEEDS = {"patchify": ("patch_dim",)}  # spec methods a capability promises


def check_capabilities(cls: type["BlockSpec"]) -> None:
    """Refuse capabilities outside the vocabulary, and a promise without the spec method it needs."""
    declared = cls.capabilities
    if not isinstance(declared, frozenset) or not all(isinstance(c, str) for c in declared):
        raise ValueError(f"block {cls.block!r}: capabilities must be a frozenset of words, not {declared!r}")
    unknown = sorted(declared - CAPABILITIES.keys())
    if unknown:
        words = ", ".join(repr(c) for c in unknown)
        hint = suggest(unknown[0], CAPABILITIES, "capabilities")
        raise ValueError(f"block {cls.block!r} declares unknown capabilities {words}; {hint}")
    for capability in sorted(declared & NEEDS.keys()):
        missing = [m for m in NEEDS[capability] if not callable(getattr(cls, m, None))]
        if missing:
            raise ValueError(f"block {cls.block!r} declares {capability!r} but has no method "
                             f"{', '.join(missing)}: {CAPABILITIES[capability]}")

NormType = Literal["layer", "layer-nobias", "rms", "batch"]


def norm_eps_field(what: str = "the block's norm") -> Any:
    """The ``norm_eps`` field of every block that holds a norm: one name, so the vit-pytorch overlay sets
    it for all of them in one rule."""
    return Field(None, gt=0, description=(
        f"Epsilon of {what}; none: the papers' value, 1e-6 for layer and rms norms (the ViT, DeiT, CaiT, "
        "XCiT, PiT, CrossViT, Twins and NesT code, and timm, all use 1e-6: with PyTorch's 1e-5 ViT-B's "
        "logits move by ~1e-2) and PyTorch's 1e-5 for batch norms. The vit-pytorch overlay sets 1e-5, "
        "torch's LayerNorm default, which vit-pytorch keeps."))
# gelu-tanh: GELU with the tanh approximation (MaxViT's TensorFlow code; timm's gelu_tanh)
Activation = Literal["gelu", "gelu-tanh", "relu", "silu", "hardswish", "tanh", "sigmoid"]


class BlockClash(ValueError):
    """A block registered under a name another block has."""


def qualified(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def register(cls: type["BlockSpec"]) -> type["BlockSpec"]:
    """Class decorator: make a spec available to blueprints under ``cls.block``."""
    name = cls.block
    if not name:
        raise ValueError(f"block {qualified(cls)} has no name: set its class attribute block")
    old = REGISTRY.get(name)
    if old is not None and old is not cls:
        kind = "built-in block" if old.__module__.startswith(__package__ + ".") else "block"
        raise BlockClash(f"block '{name}' of {qualified(cls)} clashes with the {kind} '{name}' ({qualified(old)})")
    check_capabilities(cls)
    REGISTRY[name] = cls
    return cls


# a blueprint never runs code (it is untrusted input): blocks of one's own come from whoever runs vitdsl
PLUGIN_HINT = ("a block of your own loads with 'vitdsl --plugin FILE.py' or an installed package's "
               "'vitdsl.blocks' entry point")


def unknown_block_hint(name: str, registry) -> str:
    return f"{suggest(name, registry, 'blocks')}; {PLUGIN_HINT}"


def lookup(name: str) -> type["BlockSpec"]:
    try:
        return REGISTRY[name]
    except KeyError:
        raise VitdslError(f"unknown block '{name}'", hint=unknown_block_hint(name, REGISTRY)) from None


INT64 = 2**63  # sizes at or beyond this overflow torch's int64 sizes, so validate and build would disagree


def field_leaves(cls: type, name: str) -> frozenset:
    """``leaf_types`` of a model's field, worked out once per class and field (every block of every blueprint
    validates its numbers through it: ``vitdsl list`` validates the whole zoo)."""
    key = (cls, name)
    if key not in _LEAVES:
        _LEAVES[key] = leaf_types(cls.model_fields[name].annotation)
    return _LEAVES[key]


_LEAVES: dict[tuple[type, str], frozenset] = {}


def leaf_types(ann: Any) -> frozenset:
    """The plain types a field annotation admits anywhere in it (``int | tuple[int, int]`` → int)."""
    origin = get_origin(ann)
    if origin is Annotated:
        return leaf_types(get_args(ann)[0])
    if origin is Literal:
        return frozenset(type(v) for v in get_args(ann))
    if origin in (Union, types.UnionType, list, tuple, dict):
        return frozenset().union(*(leaf_types(a) for a in get_args(ann) if a is not Ellipsis))
    return frozenset([ann])


def check_number(v: Any, leaves: frozenset) -> None:
    """Refuse what pydantic's lax mode would quietly turn into a number (true → 1, "8" → 8), numbers
    that make no model (inf, NaN) and sizes torch cannot hold; lists are checked item by item."""
    if isinstance(v, (list, tuple)):
        for item in v:
            check_number(item, leaves)
        return
    numeric = int in leaves or float in leaves
    what = "a number" if float in leaves else "a whole number"
    if leaves == {bool} and not isinstance(v, bool):
        raise ValueError("takes true or false")
    if isinstance(v, bool):
        if numeric and bool not in leaves:
            raise ValueError(f"takes {what}, not true or false")
    elif isinstance(v, str):
        if numeric and str not in leaves:
            raise ValueError(f"takes {what}, not text")
    elif isinstance(v, float) and not math.isfinite(v):
        raise ValueError(f"takes a finite number, not {v}")
    elif isinstance(v, (int, float)) and abs(v) >= INT64:
        raise ValueError("is too large: numbers must stay below 2**63")


class BlockSpec(BaseModel):
    """Base of every block spec. Subclasses set ``block``, ``takes`` and the rules below, and in
    ``capabilities`` what the block is, in the words of ``CAPABILITIES``: objectives find their roles by
    these (the layer that cuts patches, the one that adds positions), never by a block's name."""

    # deferred: a spec's validator is built when a blueprint first uses the block, not at import
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    @field_validator("*", mode="before")
    @classmethod
    def _numbers_are_numbers(cls, v: Any, info: ValidationInfo) -> Any:
        check_number(v, field_leaves(cls, info.field_name))
        return v

    block: ClassVar[str] = ""
    takes: ClassVar[tuple[str, ...]] = ("tokens",)  # accepted input kinds
    arity: ClassVar[tuple[int, int | None]] = (1, 1)  # min and max number of inputs (None: any)
    shorthand: ClassVar[str | None] = None  # field set by `- block: value`
    family: ClassVar[str] = "misc"  # groups the docs
    regroups: ClassVar[bool] = False  # its shape rule sets the output's groups; the graph carries the others' through
    terminal: ClassVar[bool] = False  # gives no features (token-ids' integers): only a network output, no block's input
    # how it treats the padding rows that token sampling leaves: "keep" (row by row, or masking them: the output
    # is still padded), "drop" (its output holds none), None (it would take them for tokens: refused)
    on_padding: ClassVar[str | None] = None
    capabilities: ClassVar[frozenset[str]] = frozenset()  # what it is, in the words of CAPABILITIES

    # -- the rules, all without torch ---------------------------------------------------------
    def infer(self, *inputs: Shape) -> Shape:
        """The output shape for these input shapes; raises ShapeError when the block cannot take them."""
        return inputs[0]

    def count_params(self, *inputs: Shape) -> int:
        return 0

    def flops(self, *inputs: Shape) -> int:
        """FLOPs for one group of the input (its ``dims``); ``total_flops`` counts every group."""
        return 0

    def data_dependent(self) -> bool:
        """Whether its token count is an upper bound, the real one depending on the data."""
        return False

    def takes_padding(self) -> str | None:
        """``on_padding`` for these fields."""
        return self.on_padding

    def total_flops(self, *inputs: Shape) -> int:
        """FLOPs for one sample: every group of the input runs the block (groups fold into the batch)."""
        return self.flops(*inputs) * (inputs[0].groups if inputs else 1)

    def pattern(self, *inputs: Shape) -> str:
        """Who attends to whom (attention blocks); empty for the rest."""
        return ""

    def row_rule(self, *inputs: Shape) -> str | None:
        """How its output's token rows follow from its input's, so that a network can compute only the rows
        read downstream (``Network.skip_unread_tokens``): "row" (row i from row i alone), "cut" (each row from
        every row, and its module's ``forward(x, rows=n)`` gives the first n rows only), or None."""
        return None

    def rows_read(self, *inputs: Shape) -> int | None:
        """How many leading rows of its input its output depends on (pool: cls); None: all of them."""
        return None

    def part_params(self, part: str, *inputs: Shape) -> int | None:
        """Parameters in one named part of the module (a submodule or tensor, as ``share: {params: [...]}``
        names it); None when the spec does not say, and the graph then counts on a module built on meta."""
        return None

    def build(self, *inputs: Shape):
        """The ``nn.Module`` for these input shapes."""
        raise VitdslError(f"block '{self.block}' has no module")

    # -- the YAML form --------------------------------------------------------------------------
    def to_item(self) -> dict[str, Any]:
        return {self.block: self.model_dump(mode="json", exclude_defaults=True)}


class MixerSpec(BlockSpec):
    """Options shared by the residual blocks (attention, mlp): how the block sits in the stream.

    ``out = x + drop_path(layer_scale * f(norm(x)))`` for ``norm: pre``;
    ``out = norm(x + drop_path(layer_scale * f(x)))`` for ``norm: post``.
    """

    norm: Literal["pre", "post", "none"] = Field("pre", description="Where the block's norm sits.")
    norm_type: NormType = Field("layer", description="The norm: layer, layer-nobias (LayerNorm "
                                "without bias), rms or batch.")
    norm_eps: float | None = norm_eps_field()
    residual: bool = Field(True, description="Add the input back (x + f(x)).")
    layer_scale: float | None = Field(None, gt=0, description="Initial value of a learned per-channel "
                                      "scale on f(x) (CaiT's LayerScale); none when unset.")
    drop_path: float = Field(0.0, ge=0, lt=1, description="Stochastic depth rate on f(x), training only.")

    def mixer_params(self, dim: int) -> int:
        n = 0
        if self.norm != "none":
            n += dim if self.norm_type in ("layer-nobias", "rms") else 2 * dim
        if self.layer_scale is not None:
            n += dim
        return n

    def mixer_kwargs(self) -> dict[str, Any]:
        return dict(norm=self.norm, norm_type=self.norm_type, norm_eps=self.norm_eps, residual=self.residual,
                    layer_scale=self.layer_scale, drop_path=self.drop_path)


def pair(v: int | tuple[int, int] | list[int]) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


def fmt_pair(p: tuple[int, int]) -> str:
    return f"{p[0]}×{p[1]}"


def linear_params(i: int, o: int, bias: bool = True) -> int:
    return i * o + (o if bias else 0)


def norm_params(kind: str | None, d: int) -> int:
    if kind in (None, "none"):
        return 0
    return d if kind in ("layer-nobias", "rms") else 2 * d


def divisors_hint(size: int, step: int, what: str) -> str:
    near = sorted({max(step, (size // step) * step), (size // step + 1) * step})
    return f"{what} that work here are multiples of {step}, e.g. " + ", ".join(map(str, near))


def window_hint(h: int, w: int, what: str = "windows") -> str:
    """'windows that fit 28×28: 1, 2, 4, 7, 14, 28' — the sizes that divide both sides of a map."""
    fits = [d for d in range(1, min(h, w) + 1) if h % d == 0 and w % d == 0]
    return f"{what} that fit {h}×{w}: " + ", ".join(map(str, fits))


def need_fit(h: int, w: int, k: int, what: str, fits: str) -> None:
    """Refuse a map that ``k`` does not divide: '<what> the feature map 50×50 (height 50)', with the
    sizes that fit in the hint (``fits`` names them, e.g. "windows")."""
    if h % k or w % k:
        side, size = ("height", h) if h % k else ("width", w)
        raise ShapeError(f"{what} the feature map {h}×{w} ({side} {size})", hint=window_hint(h, w, fits))


def need(cond: bool, message: str, hint: str | None = None) -> None:
    if not cond:
        raise ShapeError(message, hint=hint)
