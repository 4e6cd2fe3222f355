"""Several models over one backbone: tie a model's tensors to another model's, by path and shape.

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
    theirs = {**dict(source.named_parameters()), **dict(source.named_buffers())}
    shared = []
    for name, tensor in [*model.named_parameters(), *model.named_buffers()]:
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
