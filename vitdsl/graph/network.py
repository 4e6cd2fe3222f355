"""The compiled model: an ordinary ``nn.Module`` whose submodules sit at their block paths and whose
forward runs a precomputed static plan (no graph walking per call) over the modules the tree holds.

Next to the tensor on each edge the plan carries its extras (NaViT's packing, token sampling's padding;
``blocks/modules/padded.py``): at build time each step learns whether its module gives extras, reads
them and whether they pass from its input to its output, so a model without extras runs as before."""
from __future__ import annotations

import contextlib
import operator
from typing import Any, NamedTuple

import torch
from torch import nn
from torch.nn.modules.module import (
    _global_backward_hooks,
    _global_backward_pre_hooks,
    _global_forward_hooks,
    _global_forward_pre_hooks,
)

from ..blocks.modules import heap
from ..blocks.modules.padded import gives_extras, reads_extras
from ..blocks.shape import Shape
from ..blueprint.expand import INPUT
from ..errors import VitdslError
from .build import Graph
from .share import tie
from .timm_api import Layers, TimmApi


class Step(NamedTuple):
    """One step of the plan: the module at ``keys`` on the values in slots ``ins`` into slot ``out``; ``frees``:
    slots read for the last time. ``src``: the slot whose extras it sees (-1: none); ``gives``: the module
    returns (tensor, extras); ``reads``: it takes ``extras=``; ``passes``: its output keeps those of ``src``."""

    keys: tuple[str, ...]
    ins: tuple[int, ...]
    out: int
    frees: tuple[int, ...] = ()
    src: int = -1
    gives: bool = False
    reads: bool = False
    passes: bool = False


def keeps_tokens(node, x: Shape, y: Shape) -> bool:
    """Whether a block's output keeps its input's tokens row for row (the same kind, count and groups, and
    a block that does not drop padding): then extras pass through it."""
    return (y.kind in ("tokens", "packed") and (y.kind, y.dims[0], y.groups) == (x.kind, x.dims[0], x.groups)
            and node.spec.takes_padding() != "drop")


class Network(TimmApi, nn.Module):
    """A blueprint compiled to a module.

    ``model.blueprint`` is the Blueprint it was built from (parameters resolved to the chosen variant
    and overrides), so a checkpoint can rebuild it. ``model.paths`` lists the block paths in
    execution order; ``model.block(path)`` returns one block's module. timm's model API (forward_features,
    forward_head, reset_classifier, forward_intermediates, …) comes from ``TimmApi``.
    """

    # When only the leading tokens of the last blocks reach the output (pool: cls), forward computes those
    # rows alone there: the last attention's queries, projection and what follows, for the class token only.
    # A call where a hook watches one of those modules computes every row; False: always every row.
    skip_unread_tokens = True

    def __init__(self, graph: Graph, keep: set[str] | None = None):
        super().__init__()
        design = graph.design
        self.graph = graph  # the checked graph (shapes per node), kept for segment runs and probes
        self.blueprint = design.blueprint
        self.input_shape = graph.input.dims
        self.output_shape = graph.output.dims  # of the first output
        self.output_shapes = [s.dims for s in graph.outputs]
        self.paths: list[str] = [p for p in graph.order if keep is None or p in keep]
        self.complete = keep is None  # False: only the layers an objective runs (see ``run``)
        modules: dict[str, nn.Module] = {}
        for node, inputs, _ in graph:
            if keep is not None and node.path not in keep:
                continue
            module = node.spec.build(*inputs)
            if node.share is not None:  # the very tensors of an earlier block (tied, as PyTorch ties weights)
                try:
                    tie(module, modules[node.share.owner], node.share.parts, node.share.owner)
                except VitdslError as e:
                    raise e.at(node.share.location, node.path) from None
            self._place(node.path, module)
            modules[node.path] = module
        first = next(self.parameters(), None)
        if first is not None and first.device.type == "cpu":
            heap.keep()  # freed memory stays in the process's heap, for the next step (heap.py)
        self.segments: dict[tuple[str, str], tuple] = {}
        self._carries: dict[str, bool] = {INPUT: False}  # whether a path's output has extras
        self._flow: dict[str, tuple[int | None, bool, bool, bool]] = {}  # (input index, gives, reads, passes)
        for node, inputs, output in graph:
            if node.path not in modules:
                continue
            module = modules[node.path]
            src = next((k for k, p in enumerate(node.inputs) if self._carries.get(p)), None)
            gives = gives_extras(module)
            passes = src is not None and not gives and keeps_tokens(node, inputs[src], output)
            self._flow[node.path] = (src, gives, src is not None and reads_extras(module), passes)
            self._carries[node.path] = gives or passes
        if keep is not None:
            self.steps, self.out_slots, self.chain, self.layer_drops = [], (), None, []
            return
        slot = {INPUT: 0, **{p: i + 1 for i, p in enumerate(self.paths)}}
        last_use = {}
        for i, node in enumerate(n for n, _, _ in graph):
            for p in node.inputs:
                last_use[p] = i
        steps = []
        for i, (node, _, _) in enumerate(graph):
            frees = tuple(slot[p] for p in set(node.inputs) if last_use[p] == i and p not in graph.output_paths)
            steps.append(self._plan(node.path, tuple(slot[p] for p in node.inputs), slot[node.path], frees))
        # A step names its module by its path in the tree, looked up at every call: a block replaced or
        # wrapped after the build (activation checkpointing, FSDP, a user's swap) is what runs.
        self.steps = steps
        self.out_slots = tuple(slot[p] for p in graph.output_paths)
        chain = all(s.ins == (k,) and not s.gives for k, s in enumerate(steps)) and self.out_slots == (len(steps),)
        self.chain = [s.keys for s in steps] if chain else None
        self._cut = unread_cut(graph, modules) if chain else None
        index = {p: i for i, p in enumerate(self.paths)}
        self.layer_drops = [(drop.p, [self._iteration(it, index, slot, graph) for it in drop.iterations])
                            for drop in design.layer_drops]

    def _plan(self, path: str, ins: tuple[int, ...], out: int, frees: tuple[int, ...] = ()) -> Step:
        src, gives, reads, passes = self._flow[path]
        return Step(tuple(path.split(".")), ins, out, frees, -1 if src is None else ins[src], gives, reads, passes)

    def _step(self, step: Step, values: Any, extras: Any, context: torch.Tensor | None = None) -> None:
        """Run one step: ``values`` and ``extras`` are indexed by slot (lists, or dicts in a checkpointed span)."""
        module = self._at(step.keys)
        args = [values[j] for j in step.ins]
        if step.reads or context is not None:
            kwargs = {"extras": extras[step.src]} if step.reads else {}
            if context is not None and getattr(module, "takes_context", False):
                kwargs["context"] = context
            y = module(*args, **kwargs)
        else:
            y = module(*args)
        if step.gives:
            y, extras[step.out] = y
        elif step.passes:
            extras[step.out] = extras[step.src]
        values[step.out] = y

    def _iteration(self, paths: list[str], index: dict, slot: dict, graph: Graph) -> tuple[int, int, int, int]:
        """(first step, end step, input slot, output slot) of one repeat iteration that layer dropout may skip."""
        inside = set(paths)
        outside = {p for path in paths for p in graph.nx.nodes[path]["node"].inputs if p not in inside}
        steps = sorted(index[p] for p in paths)
        readers = {r for path in paths[:-1] for r in graph.nx.successors(path) if r not in inside}
        if len(outside) != 1 or steps != list(range(steps[0], steps[-1] + 1)) or readers:
            node = graph.nx.nodes[paths[0]]["node"]
            raise VitdslError("layer_dropout needs each iteration to be one chain: one input, one output, "
                              "and no layer outside reading its inner layers", location=node.location, path=paths[0])
        return steps[0], steps[-1] + 1, slot[outside.pop()], slot[paths[-1]]

    def _dropped(self) -> dict[int, tuple[int, int, int]]:
        """Sample which iterations to skip, as vit-pytorch's CaiT does: each with probability p, keeping one.
        Both draws come from torch's generator (CaiT picks the survivor with Python's ``random``), so
        ``torch.manual_seed`` alone makes training runs repeat."""
        skip = {}
        for p, iterations in self.layer_drops:
            drop = torch.zeros(len(iterations)).uniform_(0.0, 1.0) < p
            if bool(drop.all()):
                drop[int(torch.randint(len(iterations), ()))] = False
            for (start, end, src, dst), d in zip(iterations, drop.tolist()):
                if d:
                    skip[start] = (end, src, dst)
        return skip

    def _place(self, path: str, module: nn.Module) -> None:
        """Put ``module`` at ``path``; validation (blueprint.reserved) keeps every part of it a free name."""
        parts = path.split(".")
        parent: nn.Module = self
        for part in parts[:-1]:
            child = parent._modules.get(part)
            if child is None:
                child = Layers()
                parent.add_module(part, child)
            parent = child
        parent.add_module(parts[-1], module)

    def block(self, path: str) -> nn.Module:
        return self.get_submodule(path)

    def _at(self, keys: tuple[str, ...]) -> nn.Module:
        """The module now at a block's path (``get_submodule`` without its checks: this runs every step)."""
        m: nn.Module = self
        try:
            for k in keys:
                m = m._modules[k]
        except KeyError:
            raise VitdslError(f"no module at {'.'.join(keys)}: a container above it was replaced after the build",
                              path=".".join(keys), hint="wrap or replace blocks themselves (e.g. checkpoint_wrapper "
                              "on model.block(path)); for activation checkpointing, model.set_grad_checkpointing()"
                              ) from None
        return m

    def segment(self, first: str, last: str) -> tuple[Step, ...]:
        """The plan of the layers ``first`` … ``last`` (execution order); slot 0 holds the segment's one outside
        input."""
        key = (first, last)
        if key not in self.segments:
            paths = self.paths[self.paths.index(first): self.paths.index(last) + 1]
            nodes = {p: self.graph.nx.nodes[p]["node"] for p in paths}
            outside = {i for p in paths for i in nodes[p].inputs if i not in nodes}
            if len(outside) != 1:
                raise VitdslError(f"the layers {first} … {last} take {len(outside)} inputs from outside "
                                  f"({', '.join(sorted(outside))}); a segment runs on one tensor",
                                  path=first, hint="choose a segment that is a chain")
            slot = {outside.pop(): 0, **{p: i + 1 for i, p in enumerate(paths)}}
            self.segments[key] = tuple(self._plan(p, tuple(slot[i] for i in nodes[p].inputs), slot[p]) for p in paths)
        return self.segments[key]

    def run(self, x: torch.Tensor, first: str, last: str, context: torch.Tensor | None = None,
            extras: Any = None) -> torch.Tensor:
        """Run only the layers ``first`` … ``last`` on ``x`` (the input of ``first``, with its ``extras`` if it
        has some); with ``context``, every attention that can attend to a context (``takes_context``) takes its
        keys and values from it."""
        steps = self.segment(first, last)
        values: list[Any] = [x] + [None] * len(steps)
        found: list[Any] = [extras] + [None] * len(steps)
        for step in steps:
            self._step(step, values, found, context)
        return values[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.complete:
            raise VitdslError("this network holds only the layers an objective runs; call run(x, first, last)",
                              hint="build the blueprint itself for the whole network")
        if self.feature_paths is not None:
            return self._features(x)
        checkpointed = self.grad_checkpointing and torch.is_grad_enabled()
        if self.chain is not None and not checkpointed and not (self.training and self.layer_drops):
            cut = self._cut if self.skip_unread_tokens and self._cut is not None else None
            if cut is not None and (cut[2] or not self.training) and self._cuts(cut[0]):
                at, rows = cut[0], cut[1]
                for keys in self.chain[:at]:
                    x = self._at(keys)(x)
                x = self._at(self.chain[at])(x, rows=rows)
                for keys in self.chain[at + 1:]:
                    x = self._at(keys)(x)
                return x
            for keys in self.chain:
                x = self._at(keys)(x)
            return x
        values = self._execute(x, len(self.steps), frozenset(self.out_slots))
        if len(self.out_slots) == 1:
            return values[self.out_slots[0]]
        return tuple(values[i] for i in self.out_slots)

    def _cuts(self, start: int) -> bool:
        """Whether the attention at step ``start`` still gives its first rows (it was not replaced or wrapped
        since the build) and no hook watches a module from there on (or every module): a hook sees every
        row, as the blueprint describes the block."""
        if not getattr(self._at(self.chain[start]), "takes_rows", False):
            return False
        if _global_forward_hooks or _global_forward_pre_hooks or _global_backward_hooks or _global_backward_pre_hooks:
            return False
        return not any(m._forward_hooks or m._forward_pre_hooks or m._backward_hooks or m._backward_pre_hooks
                       for keys in self.chain[start:] for m in self._at(keys).modules())

    def extra_repr(self) -> str:
        return f"blueprint={self.blueprint.name!r}, input={tuple(self.input_shape)}"


def unread_cut(graph: Graph, modules: dict[str, nn.Module]) -> tuple[int, int, bool] | None:
    """Where a chain may compute only the leading rows that are read: (the step of the last attention, its
    rows, whether in training too). A pool that reads the first rows (``rows_read``), behind row-wise blocks
    (``row_rule`` "row") behind an attention that can give its first rows (``row_rule`` "cut"); in training
    only without dropout there, as fewer rows would draw fewer random numbers than the full model."""
    nodes = list(graph)
    rows = None
    for i in range(len(nodes) - 1, -1, -1):
        node, inputs, _ = nodes[i]
        if rows is None:
            rows = node.spec.rows_read(*inputs)
            continue
        rule = node.spec.row_rule(*inputs)
        if rule == "cut":
            dropout = any((isinstance(m, nn.Dropout) and m.p > 0) or getattr(m, "attn_dropout", 0) > 0
                          for n, _, _ in nodes[i:] for m in modules[n.path].modules())
            return i, rows, not dropout
        if rule != "row":
            return None
    return None


def compile_graph(graph: Graph, device: Any = None, keep: set[str] | None = None) -> Network:
    if device is None:
        return Network(graph, keep)
    with torch.device(device):
        return Network(graph, keep)


MAX_SEED = 2**64 - 1  # torch.manual_seed takes any integer below 2**64


def seeded(seed: int | None, device: Any = None) -> contextlib.AbstractContextManager:
    """A context in which torch's generators (CPU, and ``device``'s when it is an accelerator) start from
    ``seed``, restored on exit: a seeded build leaves the caller's random state as it was. ``None``: no
    seeding. The seed is checked at once, before the context is entered."""
    if seed is None:
        return contextlib.nullcontext()
    try:  # numpy integers too
        value = None if isinstance(seed, bool) else operator.index(seed)
    except TypeError:
        value = None
    if value is None or not 0 <= value <= MAX_SEED:
        raise VitdslError(f"seed must be an integer from 0 to 2**64 - 1, got {seed!r}")
    if device is None:  # where the weights will be made (get_default_device: torch >= 2.3)
        device = getattr(torch, "get_default_device", lambda: "cpu")()
    return _seeded(value, torch.device(device))


@contextlib.contextmanager
def _seeded(seed: int, device: torch.device):
    if device.type in ("cpu", "meta"):
        with torch.random.fork_rng(devices=[]):
            torch.random.default_generator.manual_seed(seed)
            yield
    elif device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        with torch.random.fork_rng(devices=[index]):
            torch.random.default_generator.manual_seed(seed)
            with torch.cuda.device(index):
                torch.cuda.manual_seed(seed)
            yield
    else:  # other accelerators: their current device is forked, and manual_seed seeds them all
        with torch.random.fork_rng(device_type=device.type):
            torch.manual_seed(seed)
            yield
