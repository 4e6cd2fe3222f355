"""vitdsl: vision transformers as declarative blueprints.

    import vitdsl
    bp = vitdsl.load("blueprints/maxvit.yaml", overrides={"classes": 10})   # Blueprint (pure data)
    model = vitdsl.build("maxvit")                                        # nn.Module
    vitdsl.summary(model)                                                 # rich renderable

Importing vitdsl does not import torch: loading and validating blueprints never needs it.
"""
from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping

from . import plain  # noqa: F401  (installs what a plain blueprint does)
from .blueprint import Blueprint, load, loads
from .blueprint.kinds import register_kind_later
from .errors import VitdslError

# the objective kind (vitdsl.objectives installs what it does) is imported with the first objective blueprint read
register_kind_later("objective", lambda: importlib.import_module(".objectives", __name__))

if TYPE_CHECKING:  # pragma: no cover
    from .graph.build import Graph
    from .graph.network import Network
    from .objectives.design import ObjectiveDesign

__version__ = "0.1.0"
__all__ = ["Blueprint", "VitdslError", "build", "load", "loads", "summary", "sweep", "validate", "register_block",
           "save", "load_checkpoint", "save_pretrained", "from_pretrained", "share", "capture", "probe"]

def validate(blueprint: str | Path | Blueprint, variant: str | None = None,
             overrides: Mapping[str, Any] | None = None, allow_paths: Iterable[str | Path] = (),
             compat: str | None = None) -> "Graph | ObjectiveDesign":
    """Check a blueprint completely (schema, wiring, every shape rule) without torch: the checked graph,
    or for an objective blueprint the checked ``ObjectiveDesign`` (encoder, roles and parts). Files it
    names must lie in the zoo, the working directory, its own folder or ``allow_paths``. ``compat``
    ("none", "vit-pytorch") replaces the compatibility overlay the blueprint's variant chooses."""
    return load(blueprint, variant, overrides, allow_paths=allow_paths, compat=compat).check()


def build(blueprint: str | Path | Blueprint, variant: str | None = None,
          overrides: Mapping[str, Any] | None = None, device: Any = None, seed: int | None = None, *,
          allow_paths: Iterable[str | Path] = (), check_memory: bool = True, compat: str | None = None,
          features: list[str] | bool | None = None, **objective_args: Any) -> "Network | Any":
    """Compile a blueprint (path, zoo name or Blueprint) into an ``nn.Module``. An objective blueprint gives
    a module whose forward returns the loss; ``objective_args`` are what that objective takes besides
    (a distillation ``teacher``, an ``augment`` function, …).

    ``seed`` makes the initial weights reproducible: the same blueprint and seed give the same
    state_dict in any process, on the same kind of device. The seed applies to this build only: torch's
    random state is the same afterwards as before, so the caller's own draws are unaffected. Weights that
    would not fit in the memory available are refused before any is allocated, unless
    ``check_memory=False``. ``compat`` as for :func:`validate`. ``features`` (stage names such as
    ``"stages.1"``, layer paths, or True for every stage) gives a backbone whose forward returns those
    outputs as maps, like timm's ``features_only=True`` (``model.feature_info`` has their channels and
    strides)."""
    from .graph.network import seeded

    rng = seeded(seed, device)  # a bad seed fails before the blueprint is checked
    bp = load(blueprint, variant, overrides, allow_paths=allow_paths, compat=compat)
    with rng:
        model = bp.build(device, check_memory, **objective_args)
    if features:
        if not hasattr(model, "features_only"):
            raise VitdslError(f"features= applies to architectures; '{bp.name}' is an objective blueprint")
        model.features_only(features)
    return model


def summary(model_or_blueprint: Any, variant: str | None = None, overrides: Mapping[str, Any] | None = None,
            batch: int = 1, allow_paths: Iterable[str | Path] = (), compat: str | None = None):
    """A shape-traced summary (traced on the meta device: no weights allocated); a rich renderable. For an
    objective: the encoder layers it runs and each of its parts."""
    built = getattr(model_or_blueprint, "blueprint", None)  # a model built by vitdsl carries its blueprint
    if built is not None and (variant is not None or overrides or compat is not None):
        raise ValueError("variant, overrides and compat apply to blueprints, not to a built model")
    bp = built if built is not None else load(model_or_blueprint, variant, overrides, allow_paths=allow_paths,
                                              compat=compat)
    return bp.trace(batch)


def sweep(model_or_blueprint: Any, sizes: Iterable[int] = (224, 384, 512), variant: str | None = None,
          overrides: Mapping[str, Any] | None = None, allow_paths: Iterable[str | Path] = (),
          compat: str | None = None):
    """The summary's costs per stage at each square input size of ``sizes`` (set through the blueprint's
    ``image_size``; traced on the meta device): tokens, FLOPs and MACs, and the attention weights, with how
    each grows from the first size to the last; a size the design cannot take is that column's error. A rich
    renderable; ``to_dict()`` and ``markdown()`` give the same data."""
    from .trace.sweep import sweep as _sweep

    built = getattr(model_or_blueprint, "blueprint", None)
    if built is not None and (variant is not None or overrides or compat is not None):
        raise ValueError("variant, overrides and compat apply to blueprints, not to a built model")
    return _sweep(built if built is not None else model_or_blueprint, sizes, variant, overrides, allow_paths, compat)


def register_block(cls):
    """Decorator: register a user block spec (a ``vitdsl.blocks.BlockSpec`` subclass) by its ``block`` name. Its
    ``capabilities`` (words of ``vitdsl.blocks.base.CAPABILITIES``) let objectives give it a role."""
    from .blocks.base import register

    return register(cls)


def save(model: "Network", path: str | Path) -> None:
    """Save weights together with the blueprint, so the model can be rebuilt without its file; the file
    carries the vitdsl version and a SHA-256 of its contents (see ``vitdsl.checkpoint``)."""
    from .checkpoint import save as _save

    _save(model, path)


def save_pretrained(model: "Network", directory: str | Path) -> Path:
    """Write ``model`` as a Hugging Face Hub-style folder: ``model.safetensors`` (a checkpoint, see :func:`save`)
    and ``blueprint.yaml`` (see ``vitdsl.hub``); returns the folder."""
    from .hub import save_pretrained as _save_pretrained

    return _save_pretrained(model, directory)


def from_pretrained(source: str | Path, device: Any = None, revision: str | None = None,
                    **objective_args: Any) -> "Network | Any":
    """The model of a folder :func:`save_pretrained` wrote, or of a Hugging Face Hub repository id
    (``owner/name``; needs huggingface_hub), checked as :func:`load_checkpoint` checks a checkpoint."""
    from .hub import from_pretrained as _from_pretrained

    return _from_pretrained(source, device, revision, **objective_args)


def share(model: Any, source: Any, freeze: bool = True) -> list[str]:
    """Tie ``model``'s parameters and buffers to ``source``'s where path and shape agree (the very same
    tensors: several adapters over one backbone), optionally frozen; the shared paths."""
    from .graph.share import share as _share

    return _share(model, source, freeze)


def load_checkpoint(path: str | Path, device: Any = None, **objective_args: Any) -> "Network | Any":
    """Rebuild a model saved with :func:`save` from its embedded blueprint and load its weights, after
    checking the file (format, version, SHA-256, weights against the blueprint); any problem is one
    VitdslError naming the file."""
    from .checkpoint import load as _load

    return _load(path, device, **objective_args)


def __getattr__(name: str):
    if name in ("interop", "objectives"):
        return importlib.import_module(f".{name}", __name__)
    if name in ("capture", "probe"):  # torch-bound: imported on first use
        from . import probes as _probe

        return getattr(_probe, name)
    if name == "transplant":  # torch-bound: imported on first use
        from .interop.transplant import transplant

        return transplant
    raise AttributeError(f"module 'vitdsl' has no attribute {name!r}")
