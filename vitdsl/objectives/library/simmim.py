"""SimMIM (Xie et al., 2021): replace a random half of the patch tokens by a learned mask token, run the
encoder's body over every patch token, and score a linear prediction of the masked patches' pixels
(L1, divided once more by the number of masked patches, as vit-pytorch does)."""
from __future__ import annotations

from typing import Any

from pydantic import Field

from ..roles import Finder, Roles
from ..spec import ObjectiveSpec, PatchRoles, register
from .patches import check_nothing_skipped, expect, masked_count, patch_roles, patch_tokens, patch_values


@register
class SimMIMSpec(ObjectiveSpec, PatchRoles):
    """Simple masked image modelling: the encoder's body sees every patch token (with its position, no class
    token), a learned mask token (plus the position) standing in for the masked ones; ``to_pixels``
    predicts the masked patches' pixel values from their encoded tokens, and the loss is their mean
    absolute error divided by the number of masked patches."""

    kind = "simmim"
    reference = "vit_pytorch.simmim.SimMIM"
    parts = {"to_pixels": "predicts the pixel values of the masked patches from their encoded tokens: tokens "
                          "[$masked, $encoder_dim] → [$masked, $patch_values]"}
    provides = {"patches": "patch tokens per image", "masked": "patch tokens masked (int(ratio · patches))",
                "encoder_dim": "width of the encoder's tokens after the body",
                "patch_values": "pixel values per patch (the prediction target)"}

    masking_ratio: float = Field(0.5, gt=0, lt=1, description="Share of the patches masked (int(ratio · N)).")

    def roles(self, finder: Finder) -> Roles:
        roles = patch_roles(finder, self)
        check_nothing_skipped(finder, roles, leave_out=("special-tokens",))
        tokens = patch_tokens(finder, roles)
        n = tokens.dims[0]
        if masked_count(self.masking_ratio, n) == 0:
            raise finder.error(f"masking_ratio {self.masking_ratio} masks no patch of {n} (int(ratio · {n}) = 0)",
                               f"mask at least one patch: masking_ratio · {n} must reach 1")
        out = finder.check(finder.span(*roles.body), tokens,
                           f"the body runs on the {n} patch tokens alone (no class token)")
        if out.kind != "tokens" or out.dims[0] != n:
            raise finder.error(f"the body turns the {n} patch tokens into {out}; the objective reads the masked "
                               "ones back, so it needs one token per patch",
                               "choose a body that keeps the patch tokens and adds none: body: [first, last]")
        return roles

    def values(self, finder: Finder, roles: Roles) -> dict[str, Any]:
        n, _ = patch_tokens(finder, roles).dims
        return {"patches": n, "masked": masked_count(self.masking_ratio, n),
                "encoder_dim": finder.graph.shape(roles.body[1]).features,
                "patch_values": patch_values(finder, roles)}

    def check_parts(self, finder: Finder, roles: Roles, parts: dict) -> None:
        v = self.values(finder, roles)
        expect(parts["to_pixels"], "to_pixels", (v["masked"], v["encoder_dim"]), (v["masked"], v["patch_values"]))

    def own_tensors(self, design) -> dict[str, tuple[int, ...]]:
        return {"mask_token": (design.encoder.shape(design.roles.patchify).features,)}

    def module(self, design, encoder, parts: dict, **kwargs):
        from .simmim_module import SimMIM

        return SimMIM(design, encoder, parts, self, **kwargs)
