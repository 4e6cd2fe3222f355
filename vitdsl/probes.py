"""Probes: capture attention maps and block outputs of a compiled blueprint in one forward call, without
wrapping or changing the model.

    with vitdsl.capture(model, attention=True, outputs=["norm"]) as cap:
        logits = model(images)
    cap.attention["blocks.0.attn"]     # (B, heads, N, N): post-softmax, before attention dropout
    cap.stacked()                      # (B, layers, heads, N, N), as vit-pytorch's Recorder
    cap.outputs["norm"]                # the block's output, as vit-pytorch's Extractor

Attention runs its fused kernel by default; only while capturing attention does it take the explicit
softmax path (the same numbers, and the maps exist). Windowed and grouped attention folds windows (or
groups) into the batch; their maps come back as (B, windows, heads, n, n). A block that attends more
than once per call (RegionViT's two steps) gives ``path``, ``path@1``, … in call order.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Iterable

import torch
from torch import nn

from .blocks.modules.padded import gives_extras
from .errors import VitdslError, suggest


@dataclass
class Capture:
    """What one capture recorded: attention maps and outputs by block path."""

    attention: dict[str, torch.Tensor] = field(default_factory=dict)
    outputs: dict[str, torch.Tensor] = field(default_factory=dict)

    def stacked(self) -> torch.Tensor:
        """The attention maps of every captured block stacked on dim 1 (B, blocks, heads, n, n), in the order
        they ran: vit-pytorch's Recorder layout. Needs maps of one shape."""
        maps = list(self.attention.values())
        if not maps:
            raise VitdslError("no attention maps were captured", hint="run the model inside the capture")
        shapes = {tuple(m.shape) for m in maps}
        if len(shapes) > 1:
            raise VitdslError(f"the captured maps differ in shape ({', '.join(map(str, sorted(shapes)))}); "
                              "they cannot be stacked", hint="read them one by one from .attention")
        return torch.stack(maps, dim=1)


def attention_paths(model: nn.Module) -> list[str]:
    """The block paths of a compiled model whose modules attend."""
    from .blocks.modules.attention import Attention

    return [p for p in _paths(model) if any(isinstance(m, Attention) for m in model.get_submodule(p).modules())]


def _paths(model: nn.Module) -> list[str]:
    paths = getattr(model, "paths", None)
    if paths is None:
        raise VitdslError(f"probes take a model built from a blueprint, not a {type(model).__name__}",
                          hint="vitdsl.build(...) gives one; for an objective, probe its .encoder")
    return list(paths)


def _select(model: nn.Module, wanted: bool | str | Iterable[str], candidates: list[str], what: str) -> list[str]:
    if wanted is True:
        return candidates
    if wanted is False or wanted is None:
        return []
    patterns = [wanted] if isinstance(wanted, str) else list(wanted)
    chosen: list[str] = []
    for pattern in patterns:
        hits = [p for p in candidates if fnmatchcase(p, pattern) or p.startswith(pattern + ".")]
        if not hits:
            raise VitdslError(f"'{pattern}' names no {what} of '{model.blueprint.name}'",
                              hint=suggest(pattern, candidates, what + "s"))
        chosen += [p for p in hits if p not in chosen]
    return chosen


@contextlib.contextmanager
def capture(model: nn.Module, attention: bool | str | Iterable[str] = False,
            outputs: str | Iterable[str] = (), detach: bool = True):
    """Record, during the forward calls made inside, the attention maps of the chosen attention blocks
    (``True``: all; or paths and glob patterns such as ``stages.*.attn``) and the outputs of the chosen
    blocks (paths). Maps and outputs are detached copies unless ``detach=False``. Yields a :class:`Capture`.
    Inside, Linear layers run as their modules, not on oneDNN's fused kernels (``blocks/modules/onednn.py``):
    what is recorded is what the modules compute, the reference implementations' numbers bit for bit."""
    from .blocks.modules.attention import explicit_attention
    from .blocks.modules.onednn import plain_kernels

    all_paths = _paths(model)
    attend = set(_select(model, attention, attention_paths(model), "attention block"))
    keep = _select(model, outputs, all_paths, "block") if outputs else []
    owner: dict[int, str] = {}
    for path in all_paths:
        for m in model.get_submodule(path).modules():
            owner.setdefault(id(m), path)
    cap = Capture()
    take = (lambda t: t.detach().clone()) if detach else (lambda t: t)
    batch: list[int] = []

    def record(module: nn.Module, attn: torch.Tensor) -> None:
        path = owner.get(id(module))
        if path not in attend:
            return
        key, i = path, 0
        while key in cap.attention:
            i += 1
            key = f"{path}@{i}"
        b = batch[-1] if batch else attn.shape[0]
        maps = take(attn)
        if maps.shape[0] != b and maps.shape[0] % b == 0:  # windows or groups folded into the batch
            maps = maps.reshape(b, -1, *maps.shape[1:])
        cap.attention[key] = maps

    def note_batch(_, args) -> None:
        x = args[0]
        batch.append(x.shape[0] if isinstance(x, torch.Tensor) else len(x))  # a list of images (NaViT)

    # every token's map and output, as the blueprint describes them (not the class token's alone)
    skipping = model.__dict__.get("skip_unread_tokens")
    model.skip_unread_tokens = False
    hooks = [model.register_forward_pre_hook(note_batch)]
    for path in keep:  # a block that gives extras returns (tokens, extras): the tokens are its output
        module = model.get_submodule(path)
        first = gives_extras(module)
        hooks.append(module.register_forward_hook(
            lambda _, __, out, path=path, first=first: cap.outputs.__setitem__(path, take(out[0] if first else out))))
    try:
        with plain_kernels(), explicit_attention(record) if attend else contextlib.nullcontext():
            yield cap
    finally:
        for h in hooks:
            h.remove()
        if skipping is None:
            del model.skip_unread_tokens
        else:
            model.skip_unread_tokens = skipping


def probe(model: nn.Module, x: torch.Tensor, attention: bool | str | Iterable[str] = True,
          outputs: str | Iterable[str] = (), detach: bool = True) -> tuple[object, Capture]:
    """One forward call with capture: ``(model(x), Capture)``."""
    with capture(model, attention, outputs, detach) as cap:
        out = model(x)
    return out, cap
