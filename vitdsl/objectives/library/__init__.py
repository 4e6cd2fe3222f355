"""The objective kinds, one module per kind (``NAME.py``: the settings, torch-free; ``NAME_module.py``: the
nn.Module). Importing this package registers every kind."""
import importlib
import pkgutil

for _info in pkgutil.iter_modules(__path__):
    if not _info.name.endswith("_module"):
        importlib.import_module(f"{__name__}.{_info.name}")
