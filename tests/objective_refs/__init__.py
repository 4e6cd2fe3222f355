"""vit-pytorch's training wrappers as the objectives' oracles, adapted where 1.26.11 breaks them.

vit-pytorch 1.26.11's ViT stores ``pos_embedding`` as (n+1, d) and ``cls_token`` as (1, d), while its
MAE, SimMIM and MPP wrappers still index them as (1, n+1, d) and (1, 1, d): the README examples fail as
written. :func:`old_shapes` presents the very same Parameters with the old shapes (views, so gradients
and weights are shared); our implementation is never adapted to the reference.
"""
from __future__ import annotations

import torch
from torch import nn


def old_shapes(vit: nn.Module) -> nn.Module:
    """The ViT, its pos_embedding and cls_token read through 3-D views of the stored 2-D Parameters."""
    base = type(vit)

    class OldShapes(base):
        pos_embedding = property(lambda self: self._parameters["pos_embedding"][None])
        cls_token = property(lambda self: self._parameters["cls_token"][None])

    OldShapes.__name__ = base.__name__
    vit.__class__ = OldShapes
    return vit


def grads_reach_every_parameter(module: nn.Module) -> list[str]:
    """Names of trainable parameters that got no gradient, or an all-zero one."""
    return [name for name, p in module.named_parameters()
            if p.requires_grad and (p.grad is None or not torch.any(p.grad != 0))]
