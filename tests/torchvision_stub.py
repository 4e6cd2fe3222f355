"""A tiny stand-in for torchvision, which cannot be installed against the CPU torch here.

The reference packages (vit-pytorch, timm) import it at module level for data transforms and a few
helpers the tests never call. Any ``torchvision.*`` import yields a module whose attributes are
placeholder classes; using one raises ImportError.
"""
from __future__ import annotations

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
        pass


def install() -> None:
    try:
        import torchvision  # noqa: F401
        return  # the real one is there
    except ImportError:
        pass
    if not any(isinstance(f, _Finder) for f in sys.meta_path):
        sys.meta_path.append(_Finder())
