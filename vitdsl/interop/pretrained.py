"""Pretrained weight files, and the transplant planner that loads them into a modified blueprint.

A file is read as timm publishes them: ``.safetensors`` (read here, see ``stfile``), or a ``.pth`` /
``.bin`` written by ``torch.save`` (read by ``torchfile``: tensors and plain data only). A container
around the state_dict (``{"state_dict": ...}``, ``{"model": ...}``, keys prefixed ``module.`` by
DataParallel) is unwrapped by name, and each unwrapping is reported as a note.

The planner compares the file with the model *before* touching a weight, tensor by tensor:
exact (same shape, or the same values with singleton dimensions added), resampled (an absolute position
table resized bicubically over its patch grid with the special-token rows kept, as timm's
``resample_abs_pos_embed``; a relative-position table interpolated over its (2w−1)² grid as timm does, see
relpos.py), re-initialised (a tensor of ours the file cannot fill: a new head, an extra block, a swapped one; it
keeps the model's own initialisation), dropped (a tensor of the file with no place: a block the model no
longer has) and derived (dropped by the map's own rule: a table the blueprint computes). Nothing is
skipped silently: the plan lists every tensor, and ``apply`` checks that it loaded exactly that.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import VitdslError
from ..torchfile import Kind, load, looks_like_torch_file
from . import relpos
from .transfer import Match, Rule, match_state_dict

KIND = Kind("weights file", "a weights file", "a weights file is a .safetensors file, or a state_dict saved with "
                                              "torch.save (.pth, .bin)")
CONTAINERS = ("state_dict", "model", "module", "model_state_dict")
HUB = "hf-hub:"


@dataclass
class Weights:
    state: dict[str, torch.Tensor]
    source: str
    notes: list[str] = field(default_factory=list)  # how the file was unwrapped


def read(source: str | Path) -> Weights:
    """The state_dict of a weights file (or ``hf-hub:timm/NAME``), unwrapped, with notes saying how."""
    text = str(source)
    if text.startswith(HUB):
        return read(_download(text[len(HUB):]))
    path = Path(source)
    if not path.is_file():
        raise VitdslError(f"weights file '{path}' does not exist" if not path.exists() else
                          f"weights file '{path}' is not a file")
    if path.suffix == ".safetensors":
        from .. import stfile

        return Weights(stfile.read(path), str(path))
    if not looks_like_torch_file(path):
        raise VitdslError(f"weights file '{path}' is neither a .safetensors file nor one torch.save wrote",
                          hint=KIND.hint)
    return unwrap(load(path, KIND), str(path))


def unwrap(data: Any, source: str) -> Weights:
    """The state_dict inside ``data``: a known container entry and a ``module.`` prefix are removed, each
    with a note; anything else that is not a flat dict of tensors is an error."""
    notes = []
    while isinstance(data, dict) and not _tensors(data):
        found = [k for k in CONTAINERS if isinstance(data.get(k), dict)]
        if len(found) != 1:
            others = ", ".join(map(str, list(data)[:8]))
            what = (f"several state_dicts ({', '.join(found)})" if found
                    else f"no state_dict among its entries ({others})")
            raise VitdslError(f"weights file '{source}' holds {what}",
                              hint="save the state_dict alone: torch.save(model.state_dict(), FILE)")
        rest = [str(k) for k in data if k != found[0]]
        notes.append(f"using the file's '{found[0]}' entry" + (f" (also there: {', '.join(rest[:6])})" if rest else ""))
        data = data[found[0]]
    if not isinstance(data, dict):
        raise VitdslError(f"weights file '{source}' holds a {type(data).__name__}, not a state_dict", hint=KIND.hint)
    bad = [str(k) for k, v in data.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise VitdslError(f"weights file '{source}' holds entries that are not tensors: {', '.join(bad[:5])}",
                          hint=KIND.hint)
    if data and all(k.startswith("module.") for k in data):
        notes.append("removed the 'module.' prefix (DataParallel) from every key")
        data = {k[len("module."):]: v for k, v in data.items()}
    return Weights(dict(data), source, notes)


def _tensors(d: dict) -> bool:
    return bool(d) and all(isinstance(v, torch.Tensor) for v in d.values())


def _download(name: str) -> Path:
    return hub_file(name, "model.safetensors", f"{HUB}{name}")


def hub_file(repo: str, filename: str, label: str, revision: str | None = None, what: str = "the file") -> Path:
    """``filename`` of the Hugging Face Hub repository ``repo``, downloaded (or from the local cache) with
    huggingface_hub, an optional dependency; ``label`` is what errors call the request, ``what`` what the user
    could download instead."""
    try:
        from huggingface_hub import hf_hub_download
    except ImportError:
        raise VitdslError(f"'{label}' needs huggingface_hub, which is not installed",
                          hint=f"pip install huggingface_hub, or download {what} and pass its path") from None
    try:
        return Path(hf_hub_download(repo, filename, revision=revision))
    except Exception as e:  # offline, unknown repository, no such file: the hub's own error says which
        raise VitdslError(f"cannot fetch '{label}': {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}",
                          hint="check the name and the network (or HF_HUB_OFFLINE), or download "
                               f"{what} and pass its path") from None


@dataclass
class Step:
    action: str  # exact, resampled, re-initialised, dropped, derived
    ours: str | None
    reference: str | None
    our_shape: tuple[int, ...] | None
    reference_shape: tuple[int, ...] | None
    note: str = ""


@dataclass
class Plan:
    steps: list[Step]
    state: dict[str, torch.Tensor]  # what apply loads: our key -> tensor
    keep: set[str]  # our keys that keep the model's initialisation

    def count(self, action: str) -> int:
        return sum(s.action == action for s in self.steps)

    @property
    def strict(self) -> bool:
        """Whether the file fills the model exactly, as an unmodified blueprint."""
        return all(s.action in ("exact", "derived") for s in self.steps)

    def summary(self) -> str:
        names = ("exact", "resampled", "re-initialised", "dropped", "derived")
        return ", ".join(f"{self.count(a)} {a}" for a in names if self.count(a))

    def render(self):
        from rich.table import Table

        table = Table(title=f"Weights plan: {self.summary()}", title_justify="left", header_style="bold")
        for col in ("Action", "Ours", "Shape", "File", "Shape", "Note"):
            table.add_column(col, overflow="fold", no_wrap=col == "Action")
        style = {"exact": "green", "resampled": "cyan", "re-initialised": "yellow", "dropped": "red",
                 "derived": "dim"}
        for s in self.steps:
            table.add_row(f"[{style[s.action]}]{s.action}[/]", s.ours or "—", _shape(s.our_shape),
                          s.reference or "—", _shape(s.reference_shape), s.note)
        return table


def _shape(shape) -> str:
    return "—" if shape is None else "×".join(map(str, shape)) or "scalar"


KeyMap = tuple[list[Rule], Mapping[str, str]] | list[Rule] | Mapping[str, str | None] | None


def _rules(key_map: KeyMap) -> tuple[list[Rule], dict[str, str]]:
    if key_map is None:
        return [(r"", "")], {}  # the file holds our own keys
    if isinstance(key_map, tuple):
        return list(key_map[0]), dict(key_map[1])
    if isinstance(key_map, Mapping):
        return [(re.escape(k) + "$", v) for k, v in key_map.items()], {}
    return list(key_map), {}


def plan(model: nn.Module, state_dict: Mapping[str, torch.Tensor], key_map: KeyMap = None) -> Plan:
    """What loading ``state_dict`` into ``model`` does to each tensor. ``key_map``: None (the file has our
    keys), ``{file key: our key}`` (None drops), a list of rewrite rules, or ``(rules, ordinals)``."""
    rules, ordinals = _rules(key_map)
    found: Match = match_state_dict(model, dict(state_dict), rules, ordinals, source="file")
    ours = model.state_dict()
    steps, state, keep, taken = [], {}, set(), set()
    unmatched = [r.reference for r in found.rows if r.status == "unmatched"]
    if unmatched:
        raise VitdslError(f"{len(unmatched)} tensor(s) of the file match no rule of the key map: "
                          f"{', '.join(unmatched[:5])}", hint="the file is of another model than the map's")
    for r in found.rows:
        if r.status in ("exact", "reshaped"):
            steps.append(Step("exact", r.ours, r.reference, r.our_shape, r.reference_shape,
                              "singleton dimensions differ" if r.status == "reshaped" else r.note))
        elif r.status == "derived":
            steps.append(Step("derived", None, r.reference, None, r.reference_shape, r.note))
        elif r.status == "misfit" and r.ours is not None and r.ours not in taken:
            taken.add(r.ours)
            resized, how = _resample(model, r.ours, state_dict[r.reference], ours[r.ours])
            if resized is not None:
                state[r.ours] = resized
                steps.append(Step("resampled", r.ours, r.reference, r.our_shape, r.reference_shape, how))
            else:
                keep.add(r.ours)
                steps.append(Step("re-initialised", r.ours, r.reference, r.our_shape, r.reference_shape,
                                  f"the file's tensor is dropped: {how}"))
        elif r.status == "missing":
            if r.ours not in taken:
                keep.add(r.ours)
                steps.append(Step("re-initialised", r.ours, None, r.our_shape, None, "not in the file"))
        else:
            note = f"the model has no '{r.ours}'" if r.status == "unplaced" and r.ours else r.note
            steps.append(Step("dropped", None, r.reference, None, r.reference_shape, note))
    for k, v in found.state.items():
        if k not in keep:
            state.setdefault(k, v)
    for k, first in found.aliases.items():  # tied keys follow the key that holds their tensor
        if first in state:
            state[k] = state[first]
        elif first in keep:
            keep.add(k)
    if state_dict and not any(s.action in ("exact", "resampled") for s in steps):
        raise VitdslError(f"none of the {len(state_dict)} tensors of the file fits this model",
                          hint="the file is of another model, or its key names are not the key map's")
    return Plan(steps, state, keep)


make_plan = plan  # load_pretrained's flag is called plan too


def apply(model: nn.Module, plan: Plan) -> nn.Module:
    """Load the plan's tensors; the keys left to the model's initialisation must be exactly the plan's."""
    with torch.no_grad():
        result = model.load_state_dict(plan.state, strict=False)
    if set(result.missing_keys) != plan.keep or result.unexpected_keys:
        raise VitdslError("the weights plan does not fit this model: it was made for another one",
                          hint="make the plan with the model it is applied to")
    return model


def load_pretrained(model: nn.Module, file: str | Path, key_map: KeyMap = None, *, plan: bool = False,
                    show: Any = True) -> Plan:
    """Read ``file`` and load it into ``model``. Without ``plan`` the file must fill the model exactly
    (strict); with ``plan`` a modified blueprint is filled by the planner, and the plan is printed first
    (``show``: True for the terminal, a rich Console, or False). Returns the plan."""
    weights = read(file)
    made = make_plan(model, weights.state, key_map)
    if not plan and not made.strict:
        odd = [s for s in made.steps if s.action not in ("exact", "derived")]
        listing = "; ".join(f"{s.action} {s.ours or s.reference}" for s in odd[:6])
        raise VitdslError(f"'{weights.source}' does not fill the model exactly ({made.summary()}): {listing}"
                          + (f" and {len(odd) - 6} more" if len(odd) > 6 else ""),
                          hint="for a modified blueprint (other image size, classes, depth) load with plan=True "
                               "(vitdsl build --weights does), which resamples, re-initialises and drops explicitly")
    if plan:
        show_plan(made, show, weights.notes)
    apply(model, made)
    return made


def show_plan(made: Plan, show: Any, notes: list[str] = ()) -> None:
    """Print the plan (and how the file was unwrapped): ``show`` is True, a rich Console, or False."""
    if not show:
        return
    from rich.console import Console

    console = show if isinstance(show, Console) else Console(highlight=False)
    for note in notes:
        console.print(f"note: {note}", soft_wrap=True)
    console.print(made.render())


def _owner(model: nn.Module, key: str):
    """The graph node (spec, input shapes) whose module holds ``key``, if the model has a graph."""
    graph = getattr(model, "graph", None)
    if graph is None:
        return None, None
    path = key.rpartition(".")[0]
    while path:
        if path in graph.nx.nodes and "node" in graph.nx.nodes[path]:
            data = graph.nx.nodes[path]
            return data["node"].spec, data["inputs"]
        path = path.rpartition(".")[0]
    return None, None


def _resample(model: nn.Module, key: str, theirs: torch.Tensor, ours: torch.Tensor):
    """(the file's tensor resized to ours, how) for position tables; (None, why not) otherwise."""
    misfit = f"{tuple(theirs.shape)} does not fit {tuple(ours.shape)}"
    spec, inputs = _owner(model, key)
    if key.endswith("rel_pos_bias.weight") and theirs.dim() == ours.dim() == 3 and theirs.shape[0] == ours.shape[0] \
            and theirs.shape[1] == theirs.shape[2] and ours.shape[1] == ours.shape[2]:
        old, new = theirs.shape[1], ours.shape[1]  # heads-first (heads, 2w−1, 2w−1), MaxViT's TensorFlow table
        return relpos.resize(theirs, new).to(ours.dtype), f"relative positions interpolated, {old}×{old} → {new}×{new}"
    if key.endswith("rel_pos_bias.weight") and theirs.dim() == 2 and ours.dim() == 2 \
            and theirs.shape[1] == ours.shape[1]:
        for extra in (0, 3):  # BEiT's table ends in 3 rows for the cls token (as query, as key, to itself): kept
            old, new = math.isqrt(max(0, theirs.shape[0] - extra)), math.isqrt(max(0, ours.shape[0] - extra))
            if old * old == theirs.shape[0] - extra and new * new == ours.shape[0] - extra and old and new:
                tables = relpos.resize(theirs[:old * old].t().reshape(-1, old, old), new)
                kept = f", {extra} cls rows kept" if extra else ""
                return (torch.cat([tables.reshape(-1, new * new).t(), theirs[old * old:]]).to(ours.dtype),
                        f"relative positions interpolated, {old}×{old} → {new}×{new}{kept}")
    if getattr(spec, "block", None) != "pos-embed" or spec.kind != "learned" or spec.unused_rows or spec.per_group:
        return None, misfit
    x = inputs[0]
    table = theirs.reshape(-1, theirs.shape[-1]) if theirs.dim() >= 2 else theirs
    if x.grid is None or len(x.grid) != 2 or table.dim() != 2 or table.shape[1] != ours.shape[-1]:
        return None, misfit
    special = x.prefix + x.suffix
    side = math.isqrt(max(0, table.shape[0] - special))
    if side * side != table.shape[0] - special:
        return None, f"{misfit}, and its {table.shape[0] - special} grid rows are not a square grid"
    grid = table[x.prefix:table.shape[0] - x.suffix].float().reshape(1, side, side, -1).permute(0, 3, 1, 2)
    grid = F.interpolate(grid, size=tuple(x.grid), mode="bicubic", align_corners=False, antialias=True)
    grid = grid.permute(0, 2, 3, 1).reshape(-1, table.shape[1]).to(ours.dtype)
    out = torch.cat([table[:x.prefix].to(ours.dtype), grid, table[table.shape[0] - x.suffix:].to(ours.dtype)])
    kept = f", {special} special-token row(s) kept" if special else ""
    return out.reshape(ours.shape), f"grid {side}×{side} → {x.grid[0]}×{x.grid[1]} (bicubic){kept}"
