"""Finding the patchify → positions → body layers that masked-image objectives run themselves."""
from __future__ import annotations

import math

from ...blocks.shape import Shape
from ...errors import VitdslError
from ..roles import Finder, Roles


# How many patches the masking objectives hide or choose: their checks and their modules must agree.
def masked_count(ratio: float, n: int) -> int:
    return int(ratio * n)


def chosen_count(prob: float, n: int) -> int:
    return math.ceil(prob * n)


def patch_roles(finder: Finder, spec, keep_special: bool = False) -> Roles:
    """The roles for objectives that embed patches, add their positions and run the body themselves.
    With ``keep_special`` the body starts at the encoder's special-token layers (MPP keeps the class
    token); otherwise those are left out, as vit-pytorch's wrappers do."""
    patchify = finder.layer(spec.patchify) if spec.patchify else finder.first("patchify")
    if patchify is None or not finder.has(patchify, "patchify"):
        raise finder.error(f"the encoder '{finder.graph.design.blueprint.name}' has no patchify layer to cut "
                           "images into patch tokens", "masked image objectives need an encoder that starts "
                           "with '- patchify'")
    source = finder.node(patchify).inputs
    if source != ["input"]:
        raise finder.error(f"the patchify layer '{patchify}' reads '{source[0]}' ({finder.block(source[0])}), "
                           "not the images; masked image objectives cut the images into patches themselves",
                           "choose an encoder whose first layer is '- patchify'")
    out = finder.graph.shape(patchify)
    if out.kind != "tokens" or out.prefix:
        raise finder.error(f"the patchify layer '{patchify}' gives {out}; the objective needs plain patch tokens",
                           "use layout: tokens")
    positions = finder.layer(spec.positions) if spec.positions else finder.first("positions", after=patchify)
    prefix = 0
    if positions is not None:
        if not finder.has(positions, "positions"):
            raise finder.error(f"'{positions}' is a {finder.block(positions)}, a layer that adds no positions")
        finder.positions_kind(positions)
        prefix = finder.graph.nx.nodes[positions]["inputs"][0].prefix
    start = positions or patchify
    if spec.body:
        first, last = finder.layer(spec.body[0]), finder.layer(spec.body[1], last=True)
    else:
        first, last = finder.default_body(start)
        i = finder.order.index(first)
        while finder.has(first, "special-tokens") and not keep_special and first != last:
            i += 1
            first = finder.order[i]
    if keep_special:
        tokens = [p for p in finder.order[finder.order.index(patchify) + 1:finder.order.index(first)]
                  if finder.has(p, "special-tokens")]
        if tokens:
            first = tokens[0]
    span = finder.span(first, last)
    keep = {patchify, *span} | ({positions} if positions else set())
    return Roles(patchify=patchify, positions=positions, prefix=prefix, body=(first, last), keep=keep)


def patch_tokens(finder: Finder, roles: Roles) -> Shape:
    return finder.graph.shape(roles.patchify)


def patch_values(finder: Finder, roles: Roles) -> int:
    node = finder.node(roles.patchify)
    return node.spec.patch_dim(finder.graph.nx.nodes[roles.patchify]["inputs"][0])


def expect(graph, name: str, takes: tuple[int, int], gives: tuple[int | None, int] | None) -> int:
    """Check a part's input and output tokens; its output width."""
    got = graph.input
    if got.kind != "tokens" or tuple(got.dims) != takes:
        raise VitdslError(f"part '{name}' takes {got}, but the objective feeds it tokens {takes[0]}×{takes[1]}",
                          path=name, hint=f"write its input as {{tokens: [{takes[0]}, {takes[1]}]}}")
    out = graph.output
    if out.kind != "tokens" or out.dims[0] != takes[0]:
        raise VitdslError(f"part '{name}' gives {out}; the objective needs one token per input token", path=name)
    if gives is not None and out.dims[1] != gives[1]:
        raise VitdslError(f"part '{name}' gives tokens of width {out.dims[1]}, but the objective needs {gives[1]}",
                          path=name, hint=f"end it with a layer of width {gives[1]}, e.g. '- head: {{classes: "
                          f"{gives[1]}}}'")
    return out.dims[1]


def check_nothing_skipped(finder: Finder, roles: Roles, leave_out: tuple[str, ...] = ()) -> None:
    """Raise when an encoder layer between the patchify layer and the body's end would not run: only
    blocks with a capability in ``leave_out`` (special tokens, which vit-pytorch's wrappers drop) may."""
    start, end = finder.order.index(roles.patchify), finder.order.index(roles.body[1])
    skipped = [p for p in finder.order[start + 1:end]
               if p not in roles.keep and not any(finder.has(p, c) for c in leave_out)]
    if skipped:
        shown = ", ".join(skipped[:4]) + (f" and {len(skipped) - 4} more" if len(skipped) > 4 else "")
        raise finder.error(f"the encoder layers {shown} come between its patchify layer '{roles.patchify}' and "
                           "the end of its body, but the objective would not run them",
                           "the objective embeds the patches itself: it needs an encoder whose patchify layer is "
                           "followed by its positions and body")
