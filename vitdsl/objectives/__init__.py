"""Training objectives as blueprints: an encoder blueprint, the objective's settings and its own networks
(decoder, projector, heads) built from the block library. See ``spec`` for the format. Importing this package
registers the objective kind of blueprint with the loader (``vitdsl`` does on import)."""
from .blueprint import ObjectiveBlueprint
from .spec import REGISTRY, ObjectiveSpec, register

__all__ = ["REGISTRY", "ObjectiveBlueprint", "ObjectiveSpec", "register"]
