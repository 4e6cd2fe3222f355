"""``vitdsl summary --sweep 224,384,512``: the summary's costs per stage across input sizes (``vitdsl.sweep``)."""
from __future__ import annotations

import json

from .errors import VitdslError, clip, safe_text


def add_sweep(p) -> None:
    p.add_argument("--sweep", metavar="SIZES", help="trace the design at each square input size, e.g. "
                   "--sweep 224,384,512 (set through image_size), and print per stage its tokens, GFLOPs and "
                   "attention weights across the sizes, with how each grows")


def sizes(text: str) -> list[int]:
    parts = [s.strip() for s in text.split(",")]
    if not all(s.isdigit() and int(s) > 0 for s in parts):
        raise VitdslError(f"--sweep takes input sizes separated by commas, got '{safe_text(clip(text))}'",
                          hint="e.g. --sweep 224,384,512")
    return [int(s) for s in parts]


def cmd_sweep(args, bp, console) -> int:
    from .trace.sweep import sweep

    if args.batch != 1:
        raise VitdslError("--sweep gives the costs of one image; --batch does not apply to it")
    result = sweep(bp, sizes(args.sweep))
    result.variant = args.variant  # applied already, with the overrides: named for the title only
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
        return 0
    for part in result.render():
        console.print(part)
    return 0
