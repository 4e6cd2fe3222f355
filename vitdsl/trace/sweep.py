"""How a design's costs grow with the input size: the summary traced (on the meta device, no weights) at each of
several square input sizes, folded into stages (``graph.costs.stage_of``: a top-level layer, one indexed stage,
a top-level repeat folded into one), each with its tokens, FLOPs and attention weights.

The size goes through the blueprint's own parameters (``image_size``, else ``image_height`` and
``image_width``), as ``--set image_size=384`` would: whatever derives from them (MaxViT's windows, position
tables sized by the grid) follows, and a size the design cannot take is that column's error, as
``vitdsl validate`` would word it, not a traceback.

The attention weights are softmax(q·kᵀ) as the explicit attention path makes them: heads × queries × keys
numbers per window and sample, 4 bytes each at float32. A global layer's grow with the square of the tokens; a
windowed layer's with the tokens (more windows of the same size).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from ..blocks.shape import CHANNELS_FIRST
from ..errors import VitdslError
from ..graph.costs import stage_of
from .rows import Row

MB = 1e6  # the tables' megabytes are decimal, as the GFLOPs are
FP32 = 4  # bytes per number of the attention weights as the tables count them
SIZE_PARAMS = (("image_size",), ("image_height", "image_width"))


@dataclass
class StageCost:
    """One stage at one input size, per sample."""

    name: str
    times: int = 1  # iterations of a top-level repeat folded into it
    tokens: int | None = None  # of its output: sequence length, or the map's positions; none for a vector
    flops: int = 0
    attn_weights: int = 0  # numbers of the attention weights, over all its attention layers
    attn_layer: int = 0  # the largest one block's (what inference holds at once)

    @property
    def macs(self) -> int:
        return self.flops // 2

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "times": self.times, "tokens": self.tokens, "flops": self.flops,
                "macs": self.macs, "attn_weights": self.attn_weights, "attn_bytes": self.attn_weights * FP32,
                "attn_layer_bytes": self.attn_layer * FP32}


@dataclass
class Point:
    """The design at one input size: its stages, or why it cannot take that size."""

    size: int
    input: tuple[int, ...] = ()
    stages: list[StageCost] = field(default_factory=list)
    error: str | None = None

    @property
    def total_flops(self) -> int:
        return sum(s.flops for s in self.stages)

    @property
    def total_macs(self) -> int:
        return sum(s.macs for s in self.stages)

    @property
    def attn_weights(self) -> int:
        return sum(s.attn_weights for s in self.stages)

    def stage(self, name: str) -> StageCost | None:
        return next((s for s in self.stages if s.name == name), None)

    def to_dict(self) -> dict[str, Any]:
        if self.error is not None:
            return {"size": self.size, "error": self.error}
        return {"size": self.size, "input": list(self.input), "error": None, "total_flops": self.total_flops,
                "total_macs": self.total_macs, "attn_bytes": self.attn_weights * FP32,
                "stages": [s.to_dict() for s in self.stages]}


@dataclass
class Sweep:
    name: str
    variant: str | None
    input_kind: str
    points: list[Point]
    compat: str | None = None

    @property
    def sizes(self) -> list[int]:
        return [p.size for p in self.points]

    @property
    def stage_names(self) -> list[str]:
        """Every stage of any size, in execution order (a stage only some sizes have keeps its place)."""
        names: list[str] = []
        for p in self.points:
            for i, s in enumerate(p.stages):
                if s.name not in names:
                    after = p.stages[i - 1].name if i else None
                    names.insert(names.index(after) + 1 if after in names else len(names), s.name)
        return names

    @property
    def ends(self) -> tuple[Point, Point] | None:
        """The first and last sizes the design takes, between which the growth is measured."""
        ok = [p for p in self.points if p.error is None]
        return (ok[0], ok[-1]) if len(ok) > 1 else None

    def growth(self, first: float | None, last: float | None) -> tuple[float, float | None] | None:
        """(last / first, the exponent k of that growth as pixels^k) between ``ends``; None where undefined."""
        ends = self.ends
        if ends is None or not first or last is None:
            return None
        ratio = last / first
        pixels = (ends[1].size / ends[0].size) ** 2
        return ratio, (math.log(ratio) / math.log(pixels) if ratio > 0 and pixels != 1 else None)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "variant": self.variant, "compat": self.compat,
                               "input_kind": self.input_kind, "sizes": self.sizes, "dtype": "float32",
                               "points": [p.to_dict() for p in self.points]}
        ends = self.ends
        if ends is not None:
            a, b = ends
            stages = {}
            for name in self.stage_names:
                sa, sb = a.stage(name), b.stage(name)
                stages[name] = {key: _ratio(self.growth(getattr(sa, key, None), getattr(sb, key, None)))
                                for key in ("tokens", "flops", "attn_layer", "attn_weights")}
            out["growth"] = {"from": a.size, "to": b.size, "total_flops": _ratio(self.growth(a.total_flops,
                                                                                             b.total_flops)),
                             "attn_bytes": _ratio(self.growth(a.attn_weights, b.attn_weights)), "stages": stages}
        return out

    def render(self):
        from .render_sweep import render

        return render(self)

    def markdown(self) -> str:
        from .render_sweep import markdown

        return markdown(self)

    def __rich_console__(self, console, options):
        yield from self.render()

    def __str__(self) -> str:
        import io

        from rich.console import Console

        console = Console(width=160, file=io.StringIO(), color_system=None)
        console.print(self)
        return console.file.getvalue()


def _ratio(growth: tuple[float, float | None] | None) -> dict[str, float | None] | None:
    return None if growth is None else {"ratio": growth[0], "exponent": growth[1]}


def tokens_of(kind: str, dims: tuple[int, ...], groups: int = 1) -> int | None:
    """Tokens of an output: a sequence's length, a map's positions; a vector has none."""
    if kind in ("tokens", "packed"):
        return dims[0] * groups
    if kind in CHANNELS_FIRST:
        return math.prod(dims[1:]) * groups
    return None


def stages(rows: list[Row]) -> list[StageCost]:
    """The rows of a traced summary folded into stages, in execution order."""
    out: dict[str, StageCost] = {}
    iterations: dict[str, set] = {}
    for r in rows:
        name, folded = stage_of(r.path, r.repeats)
        stage = out.setdefault(name, StageCost(name))
        stage.flops += r.flops
        stage.attn_weights += r.attn_weights
        stage.attn_layer = max(stage.attn_layer, r.attn_weights)
        stage.tokens = tokens_of(r.output_kind, r.output, r.groups)
        if folded:
            iterations.setdefault(name, set()).add(r.repeats[0][1])
    for name, seen in iterations.items():
        out[name].times = len(seen)
    return list(out.values())


def size_keys(bp) -> tuple[str, ...]:
    """The parameters that set the blueprint's input size."""
    design = bp.resolve()
    if design.input_kind not in CHANNELS_FIRST:
        raise VitdslError(f"'{bp.name}' takes {design.input_kind}, not images: the sweep changes an image's size")
    for keys in SIZE_PARAMS:
        if all(k in design.params for k in keys):
            # image_height given outright beside image_size: set all three
            return tuple(k for k in ("image_size", "image_height", "image_width") if k in design.params)
    raise VitdslError(f"'{bp.name}' has no image_size parameter (nor image_height and image_width), so the "
                      "sweep cannot change its input size",
                      hint="give the blueprint an image_size parameter and use it in 'input:'")


def sized(bp, keys: tuple[str, ...], size: int):
    """The blueprint with a size×size input, set through its parameters."""
    out = bp.configured(None, {k: size for k in keys})
    dims = out.resolve().input_dims
    if dims[-2:] != (size, size):
        raise VitdslError(f"setting {', '.join(keys)} to {size} gives '{bp.name}' the input "
                          f"{'×'.join(map(str, dims))}, not {size}×{size}",
                          hint="make 'input:' use image_size (or image_height and image_width)")
    return out


def check_sizes(sizes: Iterable[Any]) -> list[int]:
    sizes = list(sizes)
    if not sizes or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in sizes):
        raise VitdslError(f"the sweep takes one or more input sizes, whole numbers of at least 1, got {sizes!r}",
                          hint="e.g. sizes=[224, 384, 512], or on the command line --sweep 224,384,512")
    return sizes


def sweep(blueprint: Any, sizes: Iterable[int], variant: str | None = None,
          overrides: Mapping[str, Any] | None = None, allow_paths: Iterable[Any] = (),
          compat: str | None = None) -> Sweep:
    """Trace ``blueprint`` (a path, zoo name or Blueprint) at each square input size of ``sizes``."""
    from ..blueprint.load import load
    from ..blueprint.model import Blueprint
    from .summary import trace

    sizes = check_sizes(sizes)
    bp = load(blueprint, variant, overrides, allow_paths=allow_paths, compat=compat)
    if not isinstance(bp, Blueprint):
        raise VitdslError(f"the sweep applies to architectures; '{bp.name}' is an objective blueprint",
                          hint="sweep its encoder's blueprint")
    keys = size_keys(bp)
    points = []
    for size in sizes:
        try:
            summary = trace(sized(bp, keys, size))
        except VitdslError as e:
            points.append(Point(size, error=e.format()))
            continue
        points.append(Point(size, tuple(summary.input), stages(summary.rows)))
    design = bp.resolve()
    return Sweep(bp.name, variant, design.input_kind, points, design.blueprint.compat)
