"""The command line's pictures: ``vitdsl graph`` (kept out of cli.py, which stays a short list of commands;
the same top layer). It draws the checked graph and never imports torch."""
from __future__ import annotations

import sys
from pathlib import Path

from .errors import VitdslError

GRAPH = ("Draw a blueprint's checked graph without running the model (no torch): every block labelled with "
         "its name, block type, pattern and output shape, branches and merges as they are wired, and runs of "
         "identical repeat iterations folded into one frame, as in 'vitdsl summary'. Formats: mermaid (text for "
         "Markdown and Mermaid viewers), dot (Graphviz text), svg (laid out by Graphviz's dot, which must be "
         "installed) and html (a page that draws the Mermaid text with mermaid.js from a CDN).")


def add_graph(sub, add_target) -> None:
    p = sub.add_parser("graph", help="draw the checked graph (mermaid, dot, svg or html), without torch",
                       description=GRAPH, epilog="For an objective blueprint the picture is of its encoder.")
    add_target(p)
    p.add_argument("--format", "-f", dest="fmt", default="mermaid", choices=("mermaid", "dot", "svg", "html"),
                   help="mermaid (default), dot, svg or html")
    p.add_argument("--output", "-o", metavar="FILE", help="write to FILE instead of standard output")
    p.add_argument("--expand", action="store_true", help="draw every repeat iteration instead of folding "
                                                         "identical ones")


def cmd_graph(args, bp) -> int:
    from .trace.picture import draw

    checked = bp.check()
    encoder = getattr(checked, "encoder", None)  # an objective: its encoder is the network drawn
    graph = checked if encoder is None else encoder
    title = bp.name + (f" ({args.variant})" if args.variant else "") + (" — encoder" if encoder is not None else "")
    text = draw(graph, args.fmt, title, folded=not args.expand)
    if args.output:
        try:
            Path(args.output).write_text(text, encoding="utf-8")
        except OSError as e:
            raise VitdslError(f"cannot write '{args.output}': {e.strerror or e}") from None
    else:
        sys.stdout.write(text)
    return 0
