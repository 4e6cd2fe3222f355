"""Rich rendering of a Summary, with runs of identical repeat iterations folded into one. (It takes the
summary as given: summary.py renders through this module, so this one does not import it back.)"""
from __future__ import annotations

from rich.console import Group
from rich.table import Table
from rich.text import Text

from ..blocks.shape import groups_text
from ..errors import safe_text
from .rows import fold


def fmt_int(n: int) -> str:
    return f"{n:,}"


def fmt_flops(n: float) -> str:
    for unit, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{int(n)}"


def fmt_bytes(n: float) -> str:
    for unit, scale in (("GiB", 2 ** 30), ("MiB", 2 ** 20), ("KiB", 2 ** 10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{int(n)} B"


def fmt_shape(s) -> str:
    return "×".join(map(str, s))


def _emit(table: Table, items: list, indent: int, multiplier: int, prefix: str = "") -> None:
    pad = "  " * indent
    for item in items:
        if isinstance(item, tuple):
            _, rp, first, last, inner = item
            count = last - first + 1
            label = f"{rp}.{first}" if count == 1 else f"{rp}.{first}–{last}"
            note = "" if count == 1 else f"×{count}, identical"
            table.add_row(Text(pad + label, style="bold cyan"), Text(note, style="dim"), "", "", "", "", "", "")
            _emit(table, inner, indent + 1, multiplier * count, f"{rp}.{first}.")
            continue
        r = item
        name = r.path.removeprefix(prefix)  # relative to the iteration it is listed under
        times = f" ×{multiplier}" if multiplier > 1 else ""
        groups = r.input_groups or (1,) * len(r.inputs)
        table.add_row(pad + name, r.block, r.pattern,
                      " + ".join(fmt_shape(s) + groups_text(g) for s, g in zip(r.inputs, groups)),
                      fmt_shape(r.output) + groups_text(r.groups), fmt_int(r.params) + times if r.params else "–",
                      fmt_flops(r.flops) + times if r.flops else "–", fmt_bytes(r.kept) + times if r.kept else "–")


def render(s, folded: bool = True):
    # the name is the blueprint's own text: shown as text, never read as markup or control codes
    title = Text.assemble((safe_text(s.name, keep_newlines=False), "bold"),
                          f"  {s.input_kind} {fmt_shape(s.input)} → {s.output_kind} {fmt_shape(s.output)}",
                          f"  (compat: {s.compat})" if s.compat else "",
                          f"  batch {s.batch}" if s.batch != 1 else "")
    table = Table(title=title, title_justify="left", header_style="bold", expand=False)
    for col, kw in (("Block path", {}), ("Block", {}), ("Pattern", {}), ("Input", {"justify": "right"}),
                    ("Output", {"justify": "right"}), ("Params", {"justify": "right"}),
                    ("FLOPs", {"justify": "right"}), ("Kept for\nbackward", {"justify": "right"})):
        table.add_column(col, **kw)
    items = fold(s.rows) if folded else s.rows
    _emit(table, items, 0, 1)
    # Totals last, so the summary ends on the one figure people look for.
    footer = Text()
    footer.append(f"Total FLOPs: {fmt_flops(s.total_flops)}FLOPs per image "
                  f"({fmt_int(s.total_flops)}; matmuls and convolutions, attention included)\n")
    footer.append(f"Total MACs: {fmt_flops(s.total_macs)}MACs per image ({fmt_int(s.total_macs)}; 2 FLOPs each: "
                  "papers and timm quote MACs, often calling them FLOPs)\n")
    if s.batch != 1:
        footer.append(f"For the batch of {s.batch}: {fmt_flops(s.total_flops * s.batch)}FLOPs, "
                      f"{fmt_flops(s.total_macs * s.batch)}MACs\n")
    footer.append(f"Weight memory: {fmt_bytes(s.params_bytes + s.buffers_bytes)} "
                  f"(parameters {fmt_bytes(s.params_bytes)}, buffers {fmt_bytes(s.buffers_bytes)})\n")
    t = s.training_bytes
    footer.append(f"Training memory, estimated (batch {s.batch}, float32, AdamW): {fmt_bytes(t['total'])}\n"
                  f"  = activations kept for backward {fmt_bytes(t['activations'])} "
                  f"+ weights {fmt_bytes(t['weights'])} + gradients {fmt_bytes(t['gradients'])} "
                  f"+ AdamW's two moments {fmt_bytes(t['adamw_moments'])}\n")
    footer.append(f"Trainable params: {fmt_int(s.trainable_params)}\n")
    footer.append(f"Non-trainable params: {fmt_int(s.total_params - s.trainable_params)}\n")
    footer.append(f"Total params: {fmt_int(s.total_params)}", style="bold")
    yield Group(table, footer)
