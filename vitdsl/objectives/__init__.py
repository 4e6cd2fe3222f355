"""Training objectives as blueprints: an encoder blueprint, the objective's settings and its own networks
(decoder, projector, heads) built from the block library. See ``spec`` for the format."""
from .spec import REGISTRY, ObjectiveBlueprint, ObjectiveSpec, register

__all__ = ["REGISTRY", "ObjectiveBlueprint", "ObjectiveSpec", "register"]
