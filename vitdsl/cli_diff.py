"""``vitdsl diff A B``: two blueprints or variants compared stage by stage from the shape rules (no torch)."""
from __future__ import annotations

import json
from pathlib import Path

DESCRIPTION = ("Compare two blueprints, or two variants of one, from their shape rules (no weights, no torch): "
               "per stage the parameters and FLOPs of each with the difference, the output shapes where they "
               "differ, and the blocks added (+), removed (-) or changed (~) with the fields that changed; repeat "
               "iterations are folded (blocks.*.attn ×6 → ×12). A and B are a blueprint file or zoo name, "
               "optionally with a variant after a colon: swin:tiny.")
EPILOG = "e.g. 'vitdsl diff swin:tiny swin:small', 'vitdsl diff vit deit --set-b depth=6'"


def add_diff(sub, add_common) -> None:
    p = sub.add_parser("diff", help="compare two blueprints or variants stage by stage, without torch",
                       description=DESCRIPTION, epilog=EPILOG)
    p.add_argument("a", metavar="A", help="blueprint file or zoo name, optionally :VARIANT")
    p.add_argument("b", metavar="B", help="the blueprint to compare A with, optionally :VARIANT")
    for side in ("a", "b"):
        p.add_argument(f"--set-{side}", dest=f"set_{side}", metavar="KEY=VALUE", action="append", default=[],
                       help=f"override a parameter of {side.upper()} (YAML value, repeatable)")
    p.add_argument("--json", action="store_true", help="print the comparison as JSON")
    add_common(p)


def target(text: str) -> tuple[str, str | None]:
    """(blueprint, variant) of ``NAME[:VARIANT]``; a file whose name holds a colon is taken whole."""
    if ":" not in text or Path(text).is_file():
        return text, None
    name, _, variant = text.rpartition(":")
    return name, variant or None


def cmd_diff(args, overrides, console) -> int:
    from . import validate
    from .graph.diff import diff

    graphs = []
    for side in ("a", "b"):
        name, variant = target(getattr(args, side))
        graphs.append(validate(name, variant, overrides(getattr(args, f"set_{side}")) or None,
                               allow_paths=args.allow_paths))
    stages = diff(*graphs)
    if args.json:
        print(json.dumps({"a": args.a, "b": args.b, "stages": [s.to_dict() for s in stages]}, indent=2))
        return 0
    console.print(table(args.a, args.b, stages))
    return 0


def _delta(a: float, b: float, fmt: str) -> str:
    d = b - a
    if not d:
        return ""
    style = "red" if d > 0 else "green"
    return f"[{style}]{'+' if d > 0 else '−'}{fmt.format(abs(d))}[/]"


def table(a: str, b: str, stages):
    from rich.markup import escape
    from rich.table import Table

    t = Table(title=f"{escape(a)} → {escape(b)}", title_justify="left", header_style="bold")
    for col, kw in (("Stage", {}), ("Params", {"justify": "right"}), ("Δ params", {"justify": "right"}),
                    ("GFLOPs", {"justify": "right"}), ("Δ GFLOPs", {"justify": "right"}), ("Output", {}),
                    ("Blocks", {})):
        t.add_column(col, **kw)
    for s in stages:
        pa, pb = (x.params if x else 0 for x in (s.a, s.b))
        fa, fb = (x.flops / 1e9 if x else 0.0 for x in (s.a, s.b))
        oa, ob = (str(x.output) if x else "—" for x in (s.a, s.b))
        t.add_row(escape(s.name), f"{pa:,} → {pb:,}" if pa != pb else f"{pa:,}", _delta(pa, pb, "{:,}"),
                  f"{fa:.3g} → {fb:.3g}" if fa != fb else f"{fa:.3g}", _delta(fa, fb, "{:.3g}"),
                  escape(f"{oa} → {ob}" if oa != ob else oa), escape("\n".join(c.text() for c in s.blocks)))
    pa, pb = (sum(x.params for s in stages if (x := getattr(s, k))) for k in ("a", "b"))
    fa, fb = (sum(x.flops for s in stages if (x := getattr(s, k))) / 1e9 for k in ("a", "b"))
    t.add_section()
    t.add_row("total", f"{pa:,} → {pb:,}", _delta(pa, pb, "{:,}"), f"{fa:.3g} → {fb:.3g}", _delta(fa, fb, "{:.3g}"),
              "", "")
    return t
