"""A summary's rows, one per block, and the folding of identical repeat iterations. Torch-free, so that the
picture of a graph (``picture``) folds repeats exactly as the summary's table does."""
from __future__ import annotations

from dataclasses import dataclass
from itertools import groupby


@dataclass
class Row:
    path: str
    block: str
    pattern: str
    inputs: list[tuple[int, ...]]
    output: tuple[int, ...]
    params: int
    flops: int
    repeats: tuple[tuple[str, int], ...] = ()
    input_groups: tuple[int, ...] = ()  # groups per sample of each input and of the output (frames
    groups: int = 1                     # folded into the batch); the shapes above are one group's
    input_kinds: tuple[str, ...] = ()
    output_kind: str = ""
    kept: int = 0  # bytes of the tensors the block keeps for the backward pass, for the summary's whole batch
    # numbers in the attention weights (softmax(q·kᵀ): heads × queries × keys per window) per sample, summed
    # over the attention calls of the block; traced summaries only
    attn_weights: int = 0

    @property
    def macs(self) -> int:
        """Multiply-adds: every FLOP counted is half of one (matmuls, convolutions, attention products)."""
        return self.flops // 2


def pattern(node, inputs) -> str:
    """The summary's pattern column: what the block's attention does, and whose weights it shares."""
    return "; ".join(filter(None, (node.spec.pattern(*inputs), _shared(node))))


def _shared(node) -> str:
    """'weights of local', 'rel_pos_bias of blocks.0.attn': the owner named relative to this block."""
    if node.share is None:
        return ""
    mine, theirs = node.path.split("."), node.share.owner.split(".")
    i = 0
    while i < min(len(mine), len(theirs)) - 1 and mine[i] == theirs[i]:
        i += 1
    if theirs[i].isdigit() and i > 0:
        i -= 1
    what = "weights" if node.share.parts is None else ", ".join(node.share.parts)
    return f"{what} of {'.'.join(theirs[i:])}"


def rule_rows(graph) -> list[Row]:
    """The rows of a checked graph from the shape rules alone (no torch): parameters and FLOPs as
    ``vitdsl validate`` counts them, for a batch of one."""
    from ..graph.build import shared_params

    rows = []
    for node, inputs, output in graph:
        params = node.spec.count_params(*inputs)
        if node.share is not None:  # weights of another block, counted there
            params -= shared_params(graph.nx, node)
        rows.append(Row(node.path, node.spec.block, pattern(node, inputs), [x.dims for x in inputs], output.dims,
                        params, node.spec.total_flops(*inputs), node.repeats, tuple(x.groups for x in inputs),
                        output.groups, tuple(x.kind for x in inputs), output.kind))
    return rows


def _signature(rows: list, prefix_len: int):
    return tuple((r.path[prefix_len:], r.block, r.pattern, tuple(r.inputs), r.output, r.params, r.flops,
                  r.input_groups, r.groups) for r in rows)


def fold(rows: list, depth: int = 0, merge: bool = True) -> list:
    """Rows, with each run of identical consecutive repeat iterations replaced by
    ('run', repeat_path, first, last, folded_rows_of_one_iteration); with ``merge`` false every iteration is
    a run of its own (nothing folded away, the iterations still grouped)."""
    out: list = []
    i = 0
    while i < len(rows):
        r = rows[i]
        if len(r.repeats) <= depth:
            out.append(r)
            i += 1
            continue
        rp = r.repeats[depth][0]
        j = i
        while j < len(rows) and len(rows[j].repeats) > depth and rows[j].repeats[depth][0] == rp:
            j += 1
        iterations = [(k, list(g)) for k, g in groupby(rows[i:j], key=lambda x: x.repeats[depth][1])]
        prefix = len(rp) + 1
        runs: list = []
        for k, its in iterations:
            sig = _signature(its, prefix + len(str(k)) + 1)
            if merge and runs and runs[-1][3] == sig:
                runs[-1][2] = k
            else:
                runs.append([rp, k, k, sig, its])
        for rp_, first, last, _, its in runs:
            out.append(("run", rp_, first, last, fold(its, depth + 1, merge)))
        i = j
    return out


def representatives(rows: list, items: list) -> dict[str, tuple[str, tuple]]:
    """Each row's path → (the path of the row that stands for it once ``items``, ``fold(rows)``, folds its
    iteration away, and the folded runs it lies in as (run, iteration) pairs, outermost first):
    'blocks.7.attn' → ('blocks.0.attn', ((('blocks', 0), 7),)) when blocks 0–11 are identical."""
    runs: dict[str, list[tuple[int, int]]] = {}

    def index(items):
        for item in items:
            if isinstance(item, tuple):
                _, rp, first, last, inner = item
                runs.setdefault(rp, []).append((first, last))
                index(inner)

    index(items)
    out = {}
    for r in rows:
        path, moves, within = r.path, [], []  # moves: (iteration prefix, its representative's), outermost first
        for rp, k in r.repeats:
            for old, new in moves:
                rp = new + rp[len(old):] if rp.startswith(old) else rp
            first = next((a for a, b in runs.get(rp, ()) if a <= k <= b), k)
            within.append(((rp, first), k))
            if first != k:
                old, new = f"{rp}.{k}.", f"{rp}.{first}."
                path = new + path[len(old):]
                moves.append((old, new))
        out[r.path] = (path, tuple(within))
    return out
