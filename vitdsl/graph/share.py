"""Tied tensors. Within one model: a block with ``share:`` uses another block's parameters (``tie``).
Across models: several models over one backbone (``share``), tied by path and shape.

Built from the same blueprint (or one that keeps the backbone's paths, such as an adapter form), the
backbone part of each model then is the very same tensors: one copy in memory, trained (or frozen) once.
"""
from __future__ import annotations

from torch import nn

from ..errors import VitdslError


def share(model: nn.Module, source: nn.Module, freeze: bool = True) -> list[str]:
    """Make every parameter and buffer of ``model`` whose path and shape ``source`` also has the very
    tensor of ``source``; with ``freeze``, those parameters stop taking gradients (in both models).
    Returns the shared paths, in ``model``'s order."""
    theirs = {**dict(source.named_parameters(remove_duplicate=False)),
              **dict(source.named_buffers(remove_duplicate=False))}
    shared = []
    # every name of a tensor the model ties internally (share:), so that the tie survives
    for name, tensor in [*model.named_parameters(remove_duplicate=False), *model.named_buffers(remove_duplicate=False)]:
        other = theirs.get(name)
        if other is None or other.shape != tensor.shape:
            continue
        owner, _, leaf = name.rpartition(".")
        module = model.get_submodule(owner)
        if isinstance(other, nn.Parameter):
            module._parameters[leaf] = other
            if freeze:
                other.requires_grad_(False)
        else:
            module._buffers[leaf] = other
        shared.append(name)
    if not shared:
        raise VitdslError("share: no parameter or buffer of the model has a path and shape that the source has",
                          hint="build both from the same blueprint (e.g. a variant that keeps the backbone's paths)")
    return shared


def _tensors(module: nn.Module) -> dict[str, tuple[nn.Module, str, object]]:
    """name -> (holding module, leaf name, tensor) of every parameter and persistent buffer."""
    out = {}
    for owner_name, owner in module.named_modules(remove_duplicate=False):
        prefix = owner_name + "." if owner_name else ""
        for leaf, p in owner._parameters.items():
            if p is not None:
                out[prefix + leaf] = (owner, leaf, p)
        for leaf, b in owner._buffers.items():
            if b is not None and leaf not in owner._non_persistent_buffers_set:
                out[prefix + leaf] = (owner, leaf, b)
    return out


def tie(module: nn.Module, owner: nn.Module, parts: tuple[str, ...] | None, owner_path: str) -> list[str]:
    """Make ``module`` use ``owner``'s tensors: all of them, or those of the named parts (submodules or
    tensors); every one must exist on both sides with one shape. Non-persistent buffers (index tables
    derived from the input size) stay the module's own. Returns the tied names."""
    mine, theirs = _tensors(module), _tensors(owner)
    if parts is None:
        names = list(mine)
        extra = [n for n in theirs if n not in mine]
        if extra:
            raise VitdslError(f"share: '{owner_path}' has tensors this block lacks: {', '.join(extra[:6])}",
                              hint="a whole share needs the same tensors on both sides")
    else:
        names = []
        for part in parts:
            found = [n for n in mine if n == part or n.startswith(part + ".")]
            if not found:
                listing = sorted({n.split(".")[0] for n in mine})
                raise VitdslError(f"share: '{part}' is no parameter, buffer or submodule of this block",
                                  hint=f"its parts: {', '.join(listing) or 'none'}")
            names += found
    for name in names:
        holder, leaf, tensor = mine[name]
        other = theirs.get(name)
        if other is None or other[2].shape != tensor.shape:
            got = "has none" if other is None else f"has {tuple(other[2].shape)}"
            raise VitdslError(f"share: this block's '{name}' {tuple(tensor.shape)} cannot be the one of "
                              f"'{owner_path}', which {got}", hint="shared tensors must have one shape on both sides")
        if isinstance(tensor, nn.Parameter):
            holder._parameters[leaf] = other[2]
        else:
            holder._buffers[leaf] = other[2]
    return names
