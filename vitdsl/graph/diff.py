"""Two designs compared from their shape rules (no torch): per stage, the parameters, FLOPs and output
shape of each, and the blocks added, removed or changed — repeat iterations folded (``blocks.*.attn``)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .build import Graph
from .costs import Stage, stage_costs, stage_of


@dataclass
class BlockChange:
    path: str  # repeat iterations folded: blocks.*.attn
    change: str  # "added", "removed" or "changed"
    block: str  # its block, or "a → b" when another block took its place
    iterations: tuple[int, int] = (0, 0)  # how many of it in A and in B
    fields: list[str] = field(default_factory=list)  # "heads: 6 → 12"

    def text(self) -> str:
        sign = {"added": "+", "removed": "-", "changed": "~"}[self.change]
        a, b = self.iterations
        times = f" ×{a} → ×{b}" if a and b and a != b else f" ×{max(a, b)}" if max(a, b) > 1 else ""
        return f"{sign} {self.path} ({self.block}){times}" + (f": {', '.join(self.fields)}" if self.fields else "")


@dataclass
class StageDiff:
    name: str
    a: Stage | None
    b: Stage | None
    blocks: list[BlockChange] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        side = {k: None if s is None else {"params": s.params, "flops": s.flops, "times": s.times,
                                             "output": str(s.output)} for k, s in (("a", self.a), ("b", self.b))}
        return {"stage": self.name, **side, "blocks": [vars(c) for c in self.blocks]}


def folded(path: str, repeats: tuple) -> str:
    """``path`` with each repeat's iteration index replaced by ``*`` (innermost first: an inner repeat's
    path holds the outer index)."""
    for where, k in reversed(repeats):
        path = path.replace(f"{where}.{k}.", f"{where}.*.", 1)
    return path


def _fields(a: Any, b: Any) -> list[str]:
    da, db = a.model_dump(), b.model_dump()
    return [f"{k}: {_shown(da.get(k))} → {_shown(db.get(k))}" for k in sorted(set(da) | set(db))
            if da.get(k) != db.get(k)]


def _shown(v: Any) -> Any:
    """As YAML writes it: true/false, and "unset" for a field left to its block's default."""
    return "unset" if v is None else str(v).lower() if isinstance(v, bool) else v


def diff(ga: Graph, gb: Graph) -> list[StageDiff]:
    """The stages of A and B in order (A's, then those only B has), each with its block changes."""
    nodes = [{n.path: n for n, _, _ in g} for g in (ga, gb)]
    changes: dict[str, dict[str, BlockChange]] = {}
    for path in list(nodes[0]) + [p for p in nodes[1] if p not in nodes[0]]:
        na, nb = nodes[0].get(path), nodes[1].get(path)
        node = na or nb
        key = folded(path, node.repeats)
        stage = stage_of(path, node.repeats)[0]
        if na is not None and nb is not None:
            if na.spec == nb.spec:
                continue
            kind, block = "changed", na.spec.block if na.spec.block == nb.spec.block else \
                f"{na.spec.block} → {nb.spec.block}"
        else:
            kind, block = ("removed", na.spec.block) if nb is None else ("added", nb.spec.block)
        entry = changes.setdefault(stage, {}).setdefault(key, BlockChange(key, kind, block))
        if entry.change != kind:  # some iterations changed, others added (or removed): it changed
            entry.change = "changed"
        if kind == "changed" and na.spec.block == nb.spec.block:
            entry.fields += [f for f in _fields(na.spec, nb.spec) if f not in entry.fields]
    for stage in changes.values():  # how many iterations each folded path has on each side
        for c in stage.values():
            c.iterations = tuple(sum(folded(p, n.repeats) == c.path for p, n in side.items()) for side in nodes)
    sa, sb = ({s.name: s for s in stage_costs(g)} for g in (ga, gb))
    names = list(sa) + [n for n in sb if n not in sa]
    return [StageDiff(n, sa.get(n), sb.get(n), list(changes.get(n, {}).values())) for n in names]
