"""A sweep (``sweep.Sweep``) as tables: tokens, GFLOPs and attention weights per stage across the input sizes,
each with its growth from the first size to the last; as rich renderables or as Markdown. (It takes the sweep
as given: sweep.py renders through this module, so this one does not import it back.)"""
from __future__ import annotations

from rich.console import Group
from rich.table import Table
from rich.text import Text

from ..errors import safe_text

LEGEND = ("growth: from the first size to the last that works, ×ratio and N^k, the ratio as a power of the "
          "input's pixels (as many more patches at every stage): k ≈ 1 grows linearly (convolutions, MLPs, "
          "windowed attention: more windows of the same size), k ≈ 2 quadratically (global attention: every "
          "token attends to every other). Attention weights: all layers is their sum, what training keeps for "
          "backward unless a fused kernel recomputes them")


def _growth(sw, first, last) -> str:
    g = sw.growth(first, last)
    if g is None:
        return "–"
    return f"×{g[0]:.2f}" + ("" if g[1] is None else f" · N^{g[1]:.2f}")


def _cells(sw, values, fmt) -> list[str]:
    """One row's cells: a value per size (an error's column says so), then the growth."""
    cells = []
    for p, v in zip(sw.points, values):
        cells.append("error" if p.error is not None else "–" if not v else fmt(v))
    ends = sw.ends
    if ends is None:
        return [*cells, "–"]
    a, b = (values[sw.points.index(p)] for p in ends)
    return [*cells, _growth(sw, a, b)]


def _label(sw, name: str) -> str:
    times = max((s.times for p in sw.points if (s := p.stage(name)) is not None), default=1)
    return name + (f" ×{times}" if times > 1 else "")


def tables(sw) -> list[tuple[str, list[str], list[list[str]]]]:
    """(title, header, rows) of each table; a row's last cell is its growth."""
    ends = sw.ends
    head = ["stage", *(f"{s}×{s}" for s in sw.sizes), f"growth {ends[0].size}→{ends[1].size}" if ends else "growth"]
    names = sw.stage_names

    def per_stage(attr: str, fmt) -> list[list[str]]:
        rows = []
        for name in names:
            values = [getattr(p.stage(name), attr, None) for p in sw.points]
            if attr == "attn_layer" and not any(values):
                continue  # a stage without attention
            rows.append([_label(sw, name), *_cells(sw, values, fmt)])
        return rows

    def tokens(n: int) -> str:
        return f"{n:,}"

    def gflops(n: int) -> str:
        return f"{n / 1e9:.2f}"

    def mb(n: int) -> str:  # numbers of float32 attention weights, in MB
        return f"{n * 4 / 1e6:.2f}"

    flops = per_stage("flops", gflops)
    flops.append(["total GFLOPs", *_cells(sw, [p.total_flops for p in sw.points], gflops)])
    flops.append(["total GMACs", *_cells(sw, [p.total_macs for p in sw.points], gflops)])
    attn = per_stage("attn_layer", mb)
    attn.append(["all layers", *_cells(sw, [p.attn_weights for p in sw.points], mb)])
    return [("Tokens per image at each stage's output", head, per_stage("tokens", tokens)),
            ("GFLOPs per image (a MAC is 2 FLOPs)", head, flops),
            ("Attention weights per image, MB at float32 (heads × queries × keys × 4 bytes, a stage's largest "
             "layer)", head, attn)]


def _title(sw) -> str:
    variant = f" ({sw.variant})" if sw.variant else ""
    compat = f" (compat: {sw.compat})" if sw.compat else ""
    return f"{sw.name}{variant}{compat}: {sw.input_kind} inputs of {', '.join(f'{s}×{s}' for s in sw.sizes)}"


def _errors(sw) -> list[tuple[int, str]]:
    return [(p.size, p.error) for p in sw.points if p.error is not None]


def render(sw):
    parts: list = [Text(safe_text(_title(sw), keep_newlines=False), style="bold")]
    for title, head, rows in tables(sw):
        table = Table(title=title, title_justify="left", header_style="bold", expand=False)
        for i, col in enumerate(head):
            table.add_column(col, justify="left" if i == 0 else "right")
        for row in rows:
            style = "bold" if row[0].startswith(("total", "all layers")) else None
            table.add_row(*(safe_text(c, keep_newlines=False) for c in row), style=style)
        parts.append(table)
    footer = Text()
    for size, error in _errors(sw):
        footer.append(f"at {size}×{size}: ", style="bold red")
        footer.append(safe_text(error) + "\n")
    footer.append(LEGEND)
    parts.append(footer)
    yield Group(*parts)


def markdown(sw) -> str:
    out = []
    for title, head, rows in tables(sw):
        out += [f"{title}:", "", "| " + " | ".join(head) + " |", "| --- " + "| ---: " * (len(head) - 1) + "|"]
        out += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in rows]
        out.append("")
    for size, error in _errors(sw):
        message, _, hint = error.partition("\n  hint: ")
        out.append(f"At {size}×{size}: `{message}`" + (f" (hint: {hint})" if hint else ""))
        out.append("")
    return "\n".join(out)
