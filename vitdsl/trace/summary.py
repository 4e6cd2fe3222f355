"""Trace a blueprint on the meta device: per block its input and output shapes, parameters and FLOPs.

FLOPs are counted by ``torch.utils.flop_counter.FlopCounterMode`` while attention runs on its
explicit path (the counter sees no FLOPs in CPU ``scaled_dot_product_attention``), so attention
products are included; the block specs' own FLOP rules are held against these counts in the tests.
A FLOP here is half a multiply-add: MACs, the figure papers and timm quote, are half the FLOPs.

The model runs with autograd on (eval mode: no dropout masks), and its saved-tensor hooks count what each
block keeps for the backward pass: the activations of training, for the whole batch, each storage once.
On the explicit attention path the attention matrix is among them; a fused kernel would keep less.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import torch
from torch.utils.flop_counter import FlopCounterMode

from ..graph.build import Graph, build_graph
from ..graph.network import Network, compile_graph
from .rows import Row, pattern


@dataclass
class Summary:
    name: str
    variant_params: dict[str, Any]
    input_kind: str
    input: tuple[int, ...]
    output_kind: str
    output: tuple[int, ...]
    batch: int
    rows: list[Row] = field(default_factory=list)
    total_params: int = 0
    trainable_params: int = 0
    buffers_bytes: int = 0
    params_bytes: int = 0
    compat: str | None = None  # the compatibility overlay the blueprint was resolved with
    trainable_bytes: int = 0

    @property
    def total_flops(self) -> int:
        return sum(r.flops for r in self.rows)

    @property
    def total_macs(self) -> int:
        """Multiply-adds per image: half the FLOPs (the figure papers and timm quote, often as "FLOPs")."""
        return sum(r.macs for r in self.rows)

    @property
    def kept_bytes(self) -> int:
        """Activations kept for the backward pass, for the whole batch."""
        return sum(r.kept for r in self.rows)

    @property
    def training_bytes(self) -> dict[str, int]:
        """One training step's memory, estimated: the activations kept for backward, the weights, their
        gradients and AdamW's two moments (gradients and moments for the trainable parameters only)."""
        parts = {"activations": self.kept_bytes, "weights": self.params_bytes + self.buffers_bytes,
                 "gradients": self.trainable_bytes, "adamw_moments": 2 * self.trainable_bytes}
        return {**parts, "total": sum(parts.values())}

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "compat": self.compat, "variant_params": self.variant_params,
                "input_kind": self.input_kind, "input": list(self.input),
                "output_kind": self.output_kind, "output": list(self.output), "batch": self.batch, "dtype": "float32",
                "total_params": self.total_params, "trainable_params": self.trainable_params,
                "total_flops": self.total_flops, "total_macs": self.total_macs,
                "weight_bytes": self.params_bytes + self.buffers_bytes, "params_bytes": self.params_bytes,
                "buffers_bytes": self.buffers_bytes, "training_bytes": self.training_bytes,
                "blocks": [{"path": r.path, "block": r.block, "pattern": r.pattern,
                            "input_kinds": list(r.input_kinds), "inputs": [list(s) for s in r.inputs],
                            "output_kind": r.output_kind, "output": list(r.output),
                            "params": r.params, "flops": r.flops, "macs": r.macs, "kept_bytes": r.kept,
                            "repeats": [list(x) for x in r.repeats],
                            "input_groups": list(r.input_groups), "groups": r.groups} for r in self.rows]}

    def render(self, folded: bool = True):
        """The rich renderables, repeat iterations folded unless ``folded`` is false."""
        from .render import render

        return render(self, folded=folded)

    def __rich_console__(self, console, options):
        yield from self.render()

    def __str__(self) -> str:
        import io

        from rich.console import Console

        console = Console(width=160, file=io.StringIO(), color_system=None)
        console.print(self)
        return console.file.getvalue()


def _graph_for(obj: Any, variant: str | None, overrides: Mapping[str, Any] | None) -> Graph:
    if isinstance(obj, Network):
        if variant is not None or overrides:
            raise ValueError("variant and overrides apply to blueprints, not to a built model")
        return build_graph(obj.blueprint.resolve())
    from ..blueprint.load import load

    return build_graph(load(obj, variant, overrides).resolve())


def _check_batch(graph, batch: Any) -> None:
    """Refuse a batch that is no size, or that would make a tensor torch cannot size (int64 bytes)."""
    from ..errors import VitdslError

    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise VitdslError(f"the batch size must be a whole number of at least 1, got {batch!r}")
    largest = max(max(out.numel * out.groups, node.spec.total_flops(*inputs)) for node, inputs, out in graph)
    if batch * max(largest, 1) >= 2**62:
        raise VitdslError(f"a batch of {batch:,} is too large to trace: its largest step would take "
                          f"{batch * largest:,} numbers or FLOPs, 2**62 or more", hint="trace a smaller batch")


def trace(obj: Any, variant: str | None = None, overrides: Mapping[str, Any] | None = None,
          batch: int = 1) -> Summary:
    """Summarise a blueprint (path, zoo name, Blueprint) or a built model, traced on the meta device."""
    from ..blocks.modules.attention import explicit_attention
    from ..blocks.modules.recompute import watching

    graph = _graph_for(obj, variant, overrides)
    _check_batch(graph, batch)
    model = compile_graph(graph, device="meta")
    design = graph.design
    summary = Summary(design.blueprint.name, design.params, graph.input.kind, graph.input.dims,
                      graph.output.kind, graph.output.dims, batch, compat=design.blueprint.compat)
    summary.total_params = sum(p.numel() for p in model.parameters())
    summary.trainable_params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    summary.params_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    summary.trainable_bytes = sum(p.numel() * p.element_size() for p in model.parameters() if p.requires_grad)
    summary.buffers_bytes = sum(b.numel() * b.element_size() for _, b in model.named_buffers()
                                if _persistent(model, _))
    # slots of the network's own plan, which carries the extras (packing, padding) beside the tensors
    values: list[Any] = [torch.empty(batch, *graph.input.dims, device="meta")] + [None] * len(model.steps)
    extras: list[Any] = [None] * len(values)
    nodes = {n.path: n for n in design.nodes}
    seen: set[int] = set()  # tensors already counted: a block sharing another's weights counts only its own
    kept = _Kept(model)
    weights = _Weights()
    repeated: dict[tuple, tuple] = {}  # _repeat_key → (an output, FLOPs, bytes kept, attention weights) traced already
    model.eval()
    # grad on, so that autograd saves for backward what training would (eval: no dropout masks); on meta. The
    # blocks that recompute in training (blocks/modules/recompute.py) keep what they say, not what autograd saves
    with (torch.enable_grad(), explicit_attention(weights.record),
          torch.autograd.graph.saved_tensors_hooks(kept.pack, kept.unpack), watching(kept.keep)):
        for path, step in zip(model.paths, model.steps):
            module = model.block(path)
            node = nodes[path]
            args = [values[j] for j in step.ins]
            # a step that meets extras (packing, padding) is traced each time: its result depends on more than args
            meets_extras = step.gives or (step.src >= 0 and extras[step.src] is not None)
            key = None if meets_extras else _repeat_key(node, graph.nx.nodes[path], args, kept)
            if key in repeated:  # the same block on the same inputs again: what tracing it again would find
                out, flops, kept_bytes, attn = _replay(*repeated[key])
                values[step.out] = out
            else:
                before, weights_before = kept.bytes, weights.numel
                with FlopCounterMode(display=False) as counter:
                    model._step(step, values, extras)
                out = values[step.out]
                flops, kept_bytes = counter.get_total_flops(), kept.bytes - before
                attn = weights.numel - weights_before
                fresh = out._base is None and id(out) not in kept.seen and all(out is not a for a in args)
                if key is not None and fresh:  # an output of its own, not yet kept: a replay can stand for it
                    repeated[key] = (out, flops, kept_bytes, attn)
            params = [p for p in module.parameters() if id(p) not in seen]
            seen.update(id(p) for p in params)
            shapes = graph.nx.nodes[path]
            summary.rows.append(Row(path, node.spec.block, pattern(node, shapes["inputs"]),
                                    [tuple(a.shape[1:]) for a in args], tuple(out.shape[1:]),
                                    sum(p.numel() for p in params),
                                    flops // batch if batch else 0, node.repeats,
                                    tuple(x.groups for x in shapes["inputs"]), shapes["output"].groups,
                                    tuple(x.kind for x in shapes["inputs"]), shapes["output"].kind,
                                    kept_bytes, attn // batch))
    return summary


class _Weights:
    """Counts the numbers of the attention weights (after the softmax) the explicit attention path makes."""

    numel = 0

    def record(self, module: torch.nn.Module, attn: torch.Tensor) -> None:
        self.numel += attn.numel()


def _repeat_key(node, shapes: dict, args: list[torch.Tensor], kept: "_Kept") -> tuple | None:
    """What a block's trace depends on: its spec and checked shapes (the module is built from them alone, and
    no block keeps state between calls), and for each input its layout, dtype, grad, which inputs are the same
    storage, and whether that storage is already counted as kept (then saving it again adds nothing).
    A deep model repeats a few blocks many times: each is traced once (the 20B ViT: 2 of its 88 blocks)."""
    if node.share is not None:  # its parameters are another block's: traced as the model runs them
        return None
    bases = [a if a._base is None else a._base for a in args]
    first = {}
    inputs = tuple((tuple(a.shape), a.stride(), a.dtype, a.requires_grad, first.setdefault(id(b), i),
                    a.storage_offset(), tuple(b.shape), id(b) in kept.seen)
                   for i, (a, b) in enumerate(zip(args, bases)))
    return type(node.spec), node.spec.model_dump_json(), repr(shapes["inputs"]), repr(shapes["output"]), inputs


def _replay(out: torch.Tensor, flops: int, kept_bytes: int, attn: int) -> tuple[torch.Tensor, int, int, int]:
    """A fresh output like ``out`` (a storage of its own, as the block's own output would be)."""
    fresh = torch.empty_strided(out.shape, out.stride(), dtype=out.dtype, device=out.device)
    return fresh.requires_grad_(out.requires_grad), flops, kept_bytes, attn


class _Kept:
    """Counts the bytes of the tensors autograd saves for backward, each storage once (a view counts as its
    base; weights and buffers are counted as weights, not here)."""

    def __init__(self, model: torch.nn.Module):
        self.weights = {id(t) for t in [*model.parameters(), *model.buffers()]}
        self.seen: dict[int, torch.Tensor] = {}  # holding each tensor keeps its id from being reused
        self.bytes = 0

    def pack(self, t: torch.Tensor) -> torch.Tensor:
        base = t if t._base is None else t._base
        if id(base) not in self.weights and id(base) not in self.seen:
            self.seen[id(base)] = base
            self.bytes += base.numel() * base.element_size()
        return t

    @staticmethod
    def unpack(t: torch.Tensor) -> torch.Tensor:
        return t

    def keep(self, tensors: list[torch.Tensor]) -> None:
        for t in tensors:
            self.pack(t)


def _persistent(model: torch.nn.Module, name: str) -> bool:
    owner_name, _, leaf = name.rpartition(".")
    owner = model.get_submodule(owner_name) if owner_name else model
    return leaf not in owner._non_persistent_buffers_set
