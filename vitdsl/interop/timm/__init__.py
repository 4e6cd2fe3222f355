"""timm (pytorch-image-models) models as zoo blueprints, and their weights, strictly.

    import vitdsl.interop.timm as vt
    model = vt.build("deit3_small_patch16_224")   # the zoo blueprint + variant that is this timm model
    vt.import_weights(model, timm_model)           # or its state_dict: every tensor used, every one filled

A family is a module ``vitdsl/interop/timm/<family>.py`` named in ``FAMILIES``. It defines

* ``MODELS: dict[str, Target]``: timm model name → ``Target(blueprint, variant, overrides)``, the zoo
  blueprint, its variant and the parameter overrides that are exactly that model;
* ``RULES``: the key-rewrite rules (``vitdsl/interop/transfer.py``'s language) from timm's state_dict keys
  to those of every blueprint its MODELS name;
* ``ORDINALS`` (optional): the ordinals its rules address, as ``transfer.py`` takes them.

Nothing else is needed: ``names``, ``target``, ``build`` and ``import_weights`` find it through FAMILIES. A
blueprint belongs to one family (its weights are read with that family's rules).
"""
from __future__ import annotations

import difflib
import importlib
from functools import cache
from types import ModuleType
from typing import Any, Mapping

from ...errors import VitdslError, did_you_mean
from ..transfer import import_state_dict
from .target import Target

__all__ = ["FAMILIES", "Target", "build", "family", "import_weights", "load_pretrained", "names", "rules", "rules_for",
           "target", "variants"]

FAMILIES: tuple[str, ...] = (
    "vit", "cait", "pit", "xcit", "levit", "mobilevit", "twins", "crossvit", "nest", "maxvit",  # issue 13
    "pvt_v2",
    "beit",
    "eva02",
    "swin",
    "siglip",
    "dinov2",
    "rope_vit",
    "mvitv2",
    "davit",
)


@cache
def _families() -> dict[str, ModuleType]:
    return {name: importlib.import_module(f"{__name__}.{name}") for name in FAMILIES}


@cache
def _models() -> dict[str, tuple[Target, str]]:
    """timm name → (its target, its family)."""
    out: dict[str, tuple[Target, str]] = {}
    for family, module in _families().items():
        for name, t in module.MODELS.items():
            if name in out:
                raise VitdslError(f"timm model '{name}' is claimed by families '{out[name][1]}' and '{family}'")
            out[name] = (t, family)
    return out


def names() -> list[str]:
    """Every timm model name ``build`` resolves, sorted."""
    return sorted(_models())


def target(name: str) -> Target:
    """The blueprint, variant and overrides that are timm's ``name``."""
    try:
        t = _models()[name]
    except KeyError:
        raise _unknown(name) from None
    return Target(t[0].blueprint, t[0].variant, dict(t[0].overrides))


def family(name: str) -> str:
    """The family (module of ``FAMILIES``) that lists timm's ``name``."""
    target(name)
    return _models()[name][1]


def variants() -> dict[str, dict[str | None, list[str]]]:
    """blueprint → variant → the timm models that variant is as it stands (no overrides), sorted."""
    out: dict[str, dict[str | None, list[str]]] = {}
    for name in names():
        t = _models()[name][0]
        if not t.overrides:
            out.setdefault(t.blueprint, {}).setdefault(t.variant, []).append(name)
    return out


def _unknown(name: Any) -> VitdslError:
    models = _models()
    close = did_you_mean(str(name), models)
    prefix = str(name).split("_")[0] + "_"
    same = [n for n in sorted(models) if n.startswith(prefix)]
    label = f"{prefix}* models"
    nearest = difflib.get_close_matches(str(name), list(models), n=1, cutoff=0.6)
    if nearest:  # many families share a prefix (vit_: ViT, SigLIP, DINOv2): list the closest name's family
        family = models[nearest[0]][1]
        same, label = [n for n in same if models[n][1] == family], f"{prefix}* models of the {family} family"
    listing = f"{label}: {', '.join(same)}" if same else f"families: {', '.join(FAMILIES)}"
    return VitdslError(f"no timm model '{name}' in the zoo",
                       hint=f"{close} ({listing})" if close else f"{listing}; vitdsl.interop.timm.names() has all "
                                                                 f"{len(models)}")


def build(name: str, device: Any = None, seed: int | None = None, **overrides: Any) -> Any:
    """The compiled blueprint that is timm's ``name`` (``overrides``: blueprint parameters on top of the
    target's, e.g. ``classes=10``); ``device`` and ``seed`` as for ``vitdsl.build``."""
    from ...blueprint.load import load
    from ...graph.network import seeded

    t = target(name)
    rng = seeded(seed, device)
    bp = load(t.blueprint, t.variant, {**t.overrides, **overrides})
    with rng:
        return bp.build(device)


def _family_of(model: Any, name: str | None) -> ModuleType:
    if name is not None:
        return _families()[family(name)]
    bp = getattr(model, "blueprint", None)
    blueprint = getattr(bp, "name", None)
    owners = {_models()[n][1] for n, (t, _) in _models().items() if t.blueprint == blueprint}
    if len(owners) != 1:
        raise VitdslError(f"no timm family builds the blueprint '{blueprint}'" if not owners else
                          f"timm families {sorted(owners)} all build the blueprint '{blueprint}'",
                          hint="pass name= (the timm model name) to import_weights")
    return _families()[owners.pop()]


def state_dict_of(source: Any) -> dict[str, Any]:
    """A timm ``nn.Module``'s state_dict, or a mapping of tensors as it is."""
    if isinstance(source, Mapping):
        return dict(source)
    if callable(getattr(source, "state_dict", None)):
        return source.state_dict()
    raise VitdslError(f"timm weights come as a model or a state_dict mapping, not {type(source).__name__}")


def import_weights(model: Any, source: Any, name: str | None = None) -> dict[str, str]:
    """Copy a timm model's weights (the model or its state_dict) into ``model``, a zoo blueprint built as a
    timm model (``build``), strictly: every timm tensor finds a home and every tensor of ours is filled, or a
    VitdslError lists what does not. ``name`` (the timm model name) picks the family when ``model`` was not
    built from the zoo's blueprint of one. Returns the key map (timm key → our key)."""
    family = _family_of(model, name)
    return import_state_dict(model, state_dict_of(source), list(family.RULES), getattr(family, "ORDINALS", None),
                             source="timm")


def _rules_of(family: ModuleType) -> tuple[list, dict[str, str]]:
    return list(family.RULES), dict(getattr(family, "ORDINALS", None) or {})


def rules(name: str) -> tuple[list, dict[str, str]]:
    """The key-rewrite rules and ordinals from timm model ``name``'s keys onto its blueprint (what ``vitdsl
    verify --against timm:NAME`` tabulates and ``--keys timm:NAME`` loads with)."""
    target(name)
    return _rules_of(_families()[_models()[name][1]])


def rules_for(model: Any) -> tuple[list, dict[str, str]] | None:
    """timm's rules for a built model's blueprint, or None when no timm family builds that blueprint."""
    try:
        return _rules_of(_family_of(model, None))
    except VitdslError:
        return None


def load_pretrained(model: Any, file: Any, name: str | None = None, *, plan: bool = False, show: Any = True):
    """Load a timm checkpoint file as timm publishes it (safetensors, or .pth/.bin read weights-only) into
    ``model``: strictly, or with ``plan`` through the transplant planner for a modified blueprint (other
    image size, classes, depth), the plan printed first. ``name`` picks the family when ``model`` was not
    built from the zoo's blueprint of one. Returns the plan."""
    from ..pretrained import load_pretrained as load

    return load(model, file, _rules_of(_family_of(model, name)), plan=plan, show=show)
