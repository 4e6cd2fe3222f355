"""``vitdsl verify``: is a blueprint exactly a reference model?

Both are built, every parameter and persistent buffer of the reference is re-drawn at random (so no
zero-initialised head or layer scale hides a wrong wiring), the weights are copied across through the
reference's key map, and both run on one random input in eval mode, float32. Exact means: the same
parameter count, every tensor of either side used, and outputs within ``tolerance`` (1e-5).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch import nn

from ..errors import VitdslError
from .transfer import Row, match_state_dict

TOLERANCE = 1e-5
SHOWN = {"exact": "exact", "reshaped": "reshaped", "missing": "missing", "derived": "derived"}  # others: unused


@dataclass
class Verification:
    """What ``verify`` found; ``exact`` is the verdict, ``reason`` says why not."""

    blueprint: str
    reference: str  # "vit-pytorch:vit_pytorch.vit.ViT", "timm:deit3_small_patch16_224"
    ours_params: int
    reference_params: int
    rows: list[Row]
    max_diff: float | None  # None when the weights could not be copied or the outputs differ in shape
    problems: list[str] = field(default_factory=list)
    tolerance: float = TOLERANCE

    @property
    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in self.rows:
            kind = status(r)
            out[kind] = out.get(kind, 0) + 1
        return out

    @property
    def reason(self) -> str | None:
        """None when exact; else the first thing that is not."""
        if self.ours_params != self.reference_params:
            return (f"parameter counts differ: {self.ours_params:,} (ours) vs {self.reference_params:,} "
                    f"(reference)")
        counts = self.counts
        if counts.get("missing") or counts.get("unused"):
            return (f"{counts.get('missing', 0)} tensor(s) of ours missing, {counts.get('unused', 0)} of the "
                    f"reference unused")
        if self.problems:
            return self.problems[0]
        if self.max_diff is None or not math.isfinite(self.max_diff):
            return "the outputs could not be compared"
        if self.max_diff > self.tolerance:
            return f"outputs differ by {self.max_diff:.3g} (more than {self.tolerance:g})"
        return None

    @property
    def exact(self) -> bool:
        return self.reason is None

    def render(self) -> list:
        """Rich renderables: counts, the per-tensor table, the verdict."""
        from rich.table import Table

        title = f"[bold]{self.blueprint}[/] against [bold]{self.reference}[/]"
        head = Table(header_style="bold")
        head.add_column("")
        head.add_column("Ours", justify="right")
        head.add_column("Reference", justify="right")
        head.add_row("parameters", f"{self.ours_params:,}", f"{self.reference_params:,}")
        counts = self.counts
        head.add_row("tensors", str(sum(v for k, v in counts.items() if k != "unused")),
                     str(sum(v for k, v in counts.items() if k != "missing")))
        table = Table(title="Tensors: " + ", ".join(f"{v} {k}" for k, v in counts.items()), title_justify="left",
                      header_style="bold")
        for col in ("Reference tensor", "Shape", "Ours", "Shape", "Status", "Note"):
            table.add_column(col, overflow="fold")
        style = {"exact": "green", "reshaped": "cyan", "derived": "dim", "missing": "red", "unused": "red"}
        for r in self.rows:
            kind = status(r)
            table.add_row(r.reference or "—", _shape(r.reference_shape), r.ours or "—", _shape(r.our_shape),
                          f"[{style[kind]}]{kind}[/]", r.note or ("" if kind == r.status else r.status))
        diff = "—" if self.max_diff is None else f"{self.max_diff:.3g}"
        reason = self.reason
        verdict = (f"[green]exact[/]: max |Δ| of the outputs {diff} ≤ {self.tolerance:g}" if reason is None
                   else f"[red]not exact[/]: {reason} (max |Δ| of the outputs {diff})")
        return [title, head, table, verdict]


def status(row: Row) -> str:
    """exact / reshaped / missing / derived, and unused for a reference tensor that found no home."""
    return SHOWN.get(row.status, "unused")


def _shape(shape) -> str:
    return "—" if shape is None else "×".join(map(str, shape)) or "scalar"


def redraw(module: nn.Module, seed: int = 0) -> nn.Module:
    """Re-draw every floating parameter and persistent buffer, in place: tensors whose values are all
    positive (norm scales, variances, layer scales) uniformly in [0.5, 1.5], matrices uniformly in
    ±1/√fan-in (torch's default scale), other vectors from N(0, 0.1²). Integer buffers (indices, counts)
    are kept."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, t in module.state_dict(keep_vars=True).items():
            if not t.is_floating_point() or t.numel() == 0:
                continue
            if bool((t > 0).all()):
                new = torch.rand(t.shape, generator=gen) + 0.5
            elif t.dim() >= 2:
                bound = 1 / math.sqrt(max(1, t.numel() // t.shape[0]))
                new = (torch.rand(t.shape, generator=gen) * 2 - 1) * bound
            else:
                new = torch.randn(t.shape, generator=gen) * 0.1
            t.copy_(new.to(t.dtype))
    return module


def flat(out: Any) -> list[torch.Tensor]:
    if isinstance(out, (tuple, list)):
        return [t for o in out for t in flat(o)]
    if isinstance(out, dict):
        return [t for o in out.values() for t in flat(o)]
    return [out]


def compare(model: nn.Module, reference: nn.Module, rules: list, ordinals: dict[str, str] | None, *,
            blueprint: str, label: str, source: str, seed: int = 0, batch: int = 2,
            tolerance: float = TOLERANCE, call: Callable | None = None) -> Verification:
    """Re-draw ``reference``, copy it into ``model`` through ``rules`` and compare the outputs."""
    redraw(reference, seed)
    found = match_state_dict(model, reference.state_dict(), rules, ordinals, source=source)
    return _run(model, reference, found.rows, found.problems, found.state if not found.problems else None,
                blueprint=blueprint, label=label, seed=seed, batch=batch, tolerance=tolerance, call=call)


def compare_with_importer(model: nn.Module, reference: nn.Module, importer: Callable[[nn.Module, nn.Module], dict],
                          *, blueprint: str, label: str, seed: int = 0, batch: int = 2,
                          tolerance: float = TOLERANCE) -> Verification:
    """The same, for an importer that only returns its key map (or raises): the rows follow the map."""
    redraw(reference, seed)
    theirs, ours = reference.state_dict(), model.state_dict()
    try:
        mapping = importer(model, reference)
    except VitdslError as e:
        rows = [Row(k, None, "unplaced", tuple(v.shape), None) for k, v in theirs.items()]
        return Verification(blueprint, label, _params(model), _params(reference), rows, None,
                            [str(e).splitlines()[0]], tolerance)
    rows = []
    for k, t in mapping.items():
        ref_shape = tuple(theirs[k].shape) if k in theirs else None
        our_shape = tuple(ours[t].shape)
        rows.append(Row(k, t, "exact" if ref_shape in (None, our_shape) else "reshaped", ref_shape, our_shape))
    rows += [Row(k, None, "derived", tuple(v.shape), None) for k, v in theirs.items() if k not in mapping]
    return _run(model, reference, rows, [], {}, blueprint=blueprint, label=label, seed=seed, batch=batch,
                tolerance=tolerance, call=None)


def _params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def _run(model, reference, rows, problems, state, *, blueprint, label, seed, batch, tolerance, call) -> Verification:
    result = Verification(blueprint, label, _params(model), _params(reference), rows, None, list(problems), tolerance)
    if state is None:
        return result
    if state:
        model.load_state_dict(state, strict=True)
    model.eval(), reference.eval()
    x = torch.randn(batch, *model.input_shape, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        torch.manual_seed(seed)
        got = flat(call(model, x) if call else model(x))
        torch.manual_seed(seed)
        expected = flat(reference(x))
    if len(got) != len(expected) or any(g.shape != e.shape for g, e in zip(got, expected)):
        shapes = lambda ts: ", ".join(str(tuple(t.shape)) for t in ts)  # noqa: E731
        result.problems.append(f"the outputs differ in shape: {shapes(got)} (ours) vs {shapes(expected)} (reference)")
        return result
    result.max_diff = max((g.double() - e.double()).abs().max().item() for g, e in zip(got, expected))
    return result


def verify(blueprint: Any, against: str, variant: str | None = None, overrides: dict[str, Any] | None = None, *,
           compat: str | None = None, reference_args: dict[str, Any] | None = None, seed: int = 0,
           batch: int = 2, tolerance: float = TOLERANCE) -> Verification:
    """Check a blueprint (path, zoo name or Blueprint; with variant and overrides) against
    ``vit-pytorch:CLASS`` (built with the README arguments of ``interop.readme``, changed by
    ``reference_args``) or ``timm:NAME``."""
    from ..blueprint.load import load

    kind, sep, name = against.partition(":")
    if not sep or not name or kind not in ("vit-pytorch", "timm"):
        raise VitdslError(f"--against '{against}' names no reference",
                          hint="use vit-pytorch:CLASS (e.g. vit-pytorch:ViT) or timm:NAME "
                               "(e.g. timm:deit3_small_patch16_224)")
    overrides = dict(overrides or {})
    if kind == "vit-pytorch":
        from . import readme
        from .maps import collect

        bp = load(blueprint, variant, overrides, compat=compat)
        entry = readme.find(bp.name, name, variant, overrides) if not reference_args else \
            readme.find(bp.name, name, variant, {})
        if compat is None and entry.compat is not None:
            bp = load(blueprint, variant, overrides, compat=entry.compat)
        reference = entry.make(**_tuples(reference_args or {}))
        rules, ordinals = collect()[entry.cls]
        return compare(bp.build(), reference, rules, ordinals, blueprint=_label(bp.name, variant, overrides),
                       label=f"vit-pytorch:{entry.cls}", source="vit-pytorch", seed=seed, batch=batch,
                       tolerance=tolerance)
    if reference_args:
        raise VitdslError("--reference-arg is for vit-pytorch references; a timm model is named whole",
                          hint=f"drop --reference-arg, or name another timm model than '{name}'")
    from .timm_contract import timm_interop, timm_reference, timm_rules

    vt = timm_interop()
    model = load(blueprint, variant, overrides, compat=compat).build()
    reference = timm_reference(name)
    label = _label(model.blueprint.name, variant, overrides)
    rules = timm_rules(name)
    if rules is not None:
        return compare(model, reference, rules[0], rules[1], blueprint=label, label=f"timm:{name}", source="timm",
                       seed=seed, batch=batch, tolerance=tolerance)
    return compare_with_importer(model, reference, vt.import_weights, blueprint=label, label=f"timm:{name}",
                                 seed=seed, batch=batch, tolerance=tolerance)


def _tuples(value: Any) -> Any:
    """YAML lists as tuples: vit-pytorch tells sizes from pairs by ``isinstance(x, tuple)``."""
    if isinstance(value, dict):
        return {k: _tuples(v) for k, v in value.items()}
    if isinstance(value, list):
        return tuple(_tuples(v) for v in value)
    return value


def _label(name: str, variant: str | None, overrides: dict[str, Any]) -> str:
    extra = [f"variant {variant}"] if variant else []
    extra += [f"{k}={v}" for k, v in overrides.items()]
    return name + (f" ({', '.join(extra)})" if extra else "")
