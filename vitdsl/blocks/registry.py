"""The block registry: block name → spec class. The library's own spec modules are imported when one of their
blocks is first asked for, not when the package is: a blueprint pays for the blocks it names (``vitdsl
validate`` is a fresh process each time, and the specs are many pydantic models).

``LIBRARY`` says which module registers each of the library's blocks; a name it does not hold is no library
block (tests/test_block_registry.py checks it against every spec module imported). Whatever lists the
registry (iteration, ``len``, ``keys``, ``items``, ``dict(REGISTRY)``) imports every spec module first, so it
sees what a registry filled at import would hold.
"""
from __future__ import annotations

import importlib

PACKAGE = __name__.rpartition(".")[0]
_ATT = ".attention."
LIBRARY: dict[str, str] = {
    **dict.fromkeys(["conv-stem", "mbconv"], ".conv"),
    "conv-attn": ".conv_attention",
    "downsample": ".downsample",
    "dwconv": ".dwconv",
    **dict.fromkeys(["patchify", "pos-embed"], ".embed"),
    "ungroup": ".groups",
    **dict.fromkeys(["head", "merge", "norm", "pool"], ".heads"),
    "attn-pool": ".packed",
    "mlp": ".mlp",
    "select": ".select",
    "separable-attn": ".separable_attention",
    "token-merge": ".token_merge",
    "token-ids": ".token_sampling",
    "tokens": ".tokens",
    "channel-attn": _ATT + "channels",
    "cross-attn": _ATT + "cross",
    "global-attn": _ATT + "global_attn",
    "local-attn": _ATT + "local",
    "lsa-attn": _ATT + "lsa",
    "memory-attn": _ATT + "memory",
    "pool-attn": _ATT + "pooled",
    "reduced-attn": _ATT + "reduced",
    "region-attn": _ATT + "regional",
    "sampling-attn": _ATT + "sampling",
}
NO_BLOCKS = ("base", "shape", "registry", "modules")  # spec modules of no block (modules: torch's side)


def library_modules() -> list[str]:
    """Every module of the library that may register blocks: this package's and its subpackages' (the
    attention family), but not ``modules`` (torch)."""
    import pkgutil

    package = importlib.import_module(PACKAGE)
    found = []
    for info in pkgutil.iter_modules(package.__path__):
        if info.name in NO_BLOCKS:
            continue
        found.append(f"{PACKAGE}.{info.name}")
        if info.ispkg:
            sub = importlib.import_module(found[-1])
            found += [f"{found[-1]}.{i.name}" for i in pkgutil.iter_modules(sub.__path__)]
    return found


class Registry(dict):
    """A dict of the registered blocks that imports a library block's module the first time the block is
    looked up, and every spec module of the library before it is listed."""

    def __init__(self, library: dict[str, str]):
        super().__init__()
        self._pending = {name: PACKAGE + module for name, module in library.items()}
        self._complete = False

    def _fill(self, name) -> None:
        module = self._pending.get(name) if isinstance(name, str) and self._pending else None
        if module is not None:
            # pending until imported: a second thread that asks meanwhile waits on the import's lock, not a miss
            importlib.import_module(module)
            self._pending.pop(name, None)

    def load_all(self) -> None:
        """Import every spec module of the library (their blocks register as they are imported)."""
        if self._complete:
            return
        for module in library_modules():  # one another thread imports meanwhile is waited for, on its lock
            importlib.import_module(module)
        self._pending.clear()
        self._complete = True

    def __missing__(self, name):
        self._fill(name)
        if dict.__contains__(self, name):
            return dict.__getitem__(self, name)
        raise KeyError(name)

    def __contains__(self, name) -> bool:
        self._fill(name)
        return dict.__contains__(self, name)

    def get(self, name, default=None):
        return self[name] if name in self else default

    def pop(self, name, *default):
        self._fill(name)
        return dict.pop(self, name, *default)

    def __delitem__(self, name) -> None:
        self._fill(name)
        dict.__delitem__(self, name)

    def setdefault(self, name, default=None):
        self._fill(name)
        return dict.setdefault(self, name, default)

    def clear(self) -> None:
        self._pending.clear()
        self._complete = True
        dict.clear(self)

    def __iter__(self):
        self.load_all()
        return dict.__iter__(self)

    def __len__(self) -> int:
        self.load_all()
        return dict.__len__(self)

    def __eq__(self, other) -> bool:
        self.load_all()
        return dict.__eq__(self, other)

    __hash__ = None  # a dict's

    def __repr__(self) -> str:
        self.load_all()
        return dict.__repr__(self)

    def keys(self):
        self.load_all()
        return dict.keys(self)

    def values(self):
        self.load_all()
        return dict.values(self)

    def items(self):
        self.load_all()
        return dict.items(self)

    def copy(self) -> dict:
        self.load_all()
        return dict(dict.items(self))

    def __reduce__(self):
        return dict, (dict(self.items()),)
