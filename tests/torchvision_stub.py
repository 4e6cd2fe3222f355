"""A tiny stand-in for torchvision, which cannot be installed against the CPU torch here.

The reference packages (vit-pytorch, timm) import it at module level for data transforms and a few
helpers the tests never call. Any ``torchvision.*`` import yields a module whose attributes are
placeholder classes; using one raises ImportError. ``torchvision.transforms`` also holds the few
transform classes vit-pytorch's DINO and EsViT build in their constructors (see ``_transforms``).
"""
from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import types


class _Placeholder(type):
    def __getattr__(cls, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return f"{cls.__name__}.{name}"

    def __call__(cls, *args, **kwargs):
        raise ImportError(f"torchvision.{cls.__name__} is not available (tests use a torchvision stub)")


class _StubModule(types.ModuleType):
    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        if self.__name__ == "torchvision" and name == "transforms":  # `from torchvision import transforms`
            return importlib.import_module("torchvision.transforms")
        value = _Placeholder(name, (), {})
        setattr(self, name, value)
        return value


class _Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, fullname, path=None, target=None):
        if fullname == "torchvision" or fullname.startswith("torchvision."):
            return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
        return None

    def create_module(self, spec):
        module = _StubModule(spec.name)
        module.__path__ = []
        return module

    def exec_module(self, module):
        if module.__name__ == "torchvision.transforms":
            for name, cls in _transforms().items():
                setattr(module, name, cls)


def _transforms() -> dict:
    """DINO and EsViT build their default augmentation and crops at construction (and run the crops once).
    The augmentations become modules that refuse to run (tests pass their own); the crops resize to the
    size asked, deterministically (the identity on images of that size)."""
    import torch.nn.functional as F
    from torch import nn

    class Refuses(nn.Module):
        def __init__(self, *args, **kwargs):
            super().__init__()

        def forward(self, x):
            raise ImportError(f"torchvision.transforms.{type(self).__name__} is not available (tests use a "
                              "torchvision stub); pass augment functions")

    class RandomResizedCrop(nn.Module):
        def __init__(self, size, scale=None, **kwargs):
            super().__init__()
            self.size = tuple(size) if isinstance(size, (tuple, list)) else (size, size)

        def forward(self, x):
            return x if tuple(x.shape[-2:]) == self.size else F.interpolate(x, self.size, mode="bilinear")

    names = ("ColorJitter", "RandomGrayscale", "RandomHorizontalFlip", "GaussianBlur", "Normalize")
    return {"RandomResizedCrop": RandomResizedCrop, **{n: type(n, (Refuses,), {}) for n in names}}


def install() -> None:
    try:
        import torchvision  # noqa: F401
        return  # the real one is there
    except ImportError:
        pass
    if not any(isinstance(f, _Finder) for f in sys.meta_path):
        sys.meta_path.append(_Finder())
