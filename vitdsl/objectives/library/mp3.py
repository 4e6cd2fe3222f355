"""MP3 (Zhai et al., 2022): masked position prediction. Every patch token, without its position, queries
the visible patch tokens in every attention of the body, and a head predicts where each token sits
(cross-entropy over the patch positions)."""
from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator

from ...blocks.shape import Shape
from ...errors import VitdslError
from ..roles import Finder, Roles
from ..spec import ObjectiveSpec, PatchRoles, register
from .patches import expect, masked_count, patch_roles, patch_tokens

# The attention blocks that keep keys of their own (memory-attn, lsa-attn's self-mask, sampling-attn,
# channel-attn, reduced-attn) do not take a context, and global-attn over groups attends across its own groups.
CONTEXT_HINT = "MP3 needs attention that takes a context, such as global-attn over tokens (over: tokens)"


def no_context(spec) -> str | None:
    """Why an attention block cannot attend to a context (other tokens than its queries), or None."""
    if "context" not in spec.capabilities:
        return f"{spec.block} attends only to its own tokens"
    if getattr(spec, "over", "tokens") != "tokens":
        return f"over: {spec.over} attends across its own tokens' groups"
    return None


@register
class MP3Spec(ObjectiveSpec, PatchRoles):
    """Masked position prediction: the patch tokens, without positions and without class token, run
    through the encoder's body as queries; in every attention their keys and values come from the
    visible (unmasked) patch tokens as embedded, through that attention's own pre-norm; the ``head``
    gives each token logits over the patch positions, and the loss is the cross-entropy against each
    token's own position. The encoder's positions layer is not run."""

    kind = "mp3"
    reference = "vit_pytorch.mp3.MP3"
    parts = {"head": "predicts each patch token's position: tokens [$patches, $encoder_dim] → "
                     "[$patches, $patches]"}
    provides = {"patches": "patch tokens per image (and positions to predict)",
                "visible": "patch tokens every attention attends to", "masked": "patch tokens left out of them",
                "encoder_dim": "width of the encoder's tokens"}

    masking_ratio: float = Field(0.75, gt=0, lt=1, description="Share of the patch tokens left out of the keys "
                                 "and values (int(ratio · N)); all of them still query.")

    @field_validator("positions")
    @classmethod
    def _no_positions(cls, v):
        if v is not None:
            raise ValueError("MP3 feeds the body patch tokens without positions (it predicts them), so no "
                             "positions layer runs; leave this setting out")
        return v

    def roles(self, finder: Finder) -> Roles:
        roles = patch_roles(finder, self)
        skipped = roles.positions
        roles.positions, roles.prefix = None, 0
        span = finder.span(*roles.body)
        roles.keep = {roles.patchify, *span}
        n, d = patch_tokens(finder, roles).dims
        for path in span:
            self.check_layer(finder, path, d, skipped)
        out = finder.check(span, Shape.tokens(n, d), f"the body runs on the {n} patch tokens without positions "
                           "(no class token, no patch grid)")
        if out.kind != "tokens" or out.dims[0] != n:
            raise finder.error(f"the body gives {out}; MP3 predicts the position of every patch token, so the "
                               f"body must keep the {n} tokens", "end the body before any pooling or token merging")
        return roles

    def check_layer(self, finder: Finder, path: str, width: int, positions: str | None) -> None:
        spec = finder.node(path).spec
        if "positions" in spec.capabilities:
            raise VitdslError(f"mp3: the body holds the positions layer '{path}', but MP3 feeds patch tokens "
                              "without positions (it predicts them)", location=finder.location, path=path,
                              hint=f"start the body after '{positions or path}'")
        if "attention" not in spec.capabilities:
            return
        why = no_context(spec)
        if why is not None:
            raise VitdslError(f"mp3: every attention in the body takes its keys and values from the visible patch "
                              f"tokens, which '{path}' ({spec.block}) cannot: {why}", location=finder.location,
                              path=path, hint=CONTEXT_HINT)
        got = finder.graph.nx.nodes[path]["inputs"][0].features
        if got != width:
            raise VitdslError(f"mp3: '{path}' attends to the visible patch tokens, {width} wide, but its own "
                              f"tokens are {got} wide", location=finder.location, path=path,
                              hint="keep the body at the patch tokens' width up to its last attention")

    def values(self, finder: Finder, roles: Roles) -> dict[str, Any]:
        n, _ = patch_tokens(finder, roles).dims
        masked = masked_count(self.masking_ratio, n)
        return {"patches": n, "visible": n - masked, "masked": masked,
                "encoder_dim": finder.graph.shape(roles.body[1]).features}

    def check_parts(self, finder: Finder, roles: Roles, parts: dict) -> None:
        v = self.values(finder, roles)
        expect(parts["head"], "head", (v["patches"], v["encoder_dim"]), (v["patches"], v["patches"]))

    def module(self, design, encoder, parts: dict, **kwargs):
        from .mp3_module import MP3

        return MP3(design, encoder, parts, self, **kwargs)
