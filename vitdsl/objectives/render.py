"""Rich rendering of an ObjectiveSummary: a heading per network, each with its block table."""
from __future__ import annotations

from rich.text import Text

from ..errors import safe_text
from ..trace.render import fmt_int
from ..trace.render import render as render_network


def render(s, folded: bool = True):
    yield Text.assemble((safe_text(s.name, keep_newlines=False), "bold"),
                        f" — objective '{s.kind}', {fmt_int(s.total_params)} trainable "
                        "parameters in all")
    roles = ", ".join(f"{role}: {path}" for role, path in s.roles)
    yield Text(f"\nencoder '{safe_text(s.encoder.name, keep_newlines=False)}'" + (f" ({roles})" if roles else ""),
               style="bold")
    if s.unused:
        yield Text(f"  not run by {s.kind}, so not built: {', '.join(s.unused)}. Shapes below are the encoder's "
                   "own forward.", style="dim")
    yield from render_network(s.encoder, folded=folded)
    for name, part in s.parts.items():
        yield Text(f"\npart '{name}'", style="bold")
        if part is None:
            yield Text("  switched off by its 'when': the objective passes its input through", style="dim")
            continue
        yield from render_network(part, folded=folded)
    if s.own:
        own = ", ".join(f"{name} {'×'.join(map(str, shape))}" for name, shape in s.own)
        yield Text(f"\nthe objective's own tensors: {own} ({fmt_int(s.own_params)} parameters)")
