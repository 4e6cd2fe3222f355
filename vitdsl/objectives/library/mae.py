"""MAE (He et al., 2021): encode a random quarter of the patches, decode all of them with mask tokens in
the masked places, and score the pixels of the masked ones (mean squared error)."""
from __future__ import annotations

from typing import Any

from pydantic import Field

from ...blocks.shape import Shape
from ..roles import Finder, Roles
from ..spec import ObjectiveSpec, PatchRoles, register
from .patches import check_nothing_skipped, expect, masked_count, patch_roles, patch_tokens, patch_values


@register
class MAESpec(ObjectiveSpec, PatchRoles):
    """Masked autoencoder: the encoder's body sees only the visible patch tokens (with their positions, no
    class token); ``to_decoder`` maps them to the decoder's width, a learned mask token fills the masked
    places, the ``decoder`` predicts every patch's pixel values, and the loss is the mean squared error
    over the masked patches."""

    kind = "mae"
    reference = "vit_pytorch.mae.MAE"
    parts = {"to_decoder": "maps the encoded visible tokens to the decoder's width: tokens [$visible, "
                           "$encoder_dim] → [$visible, decoder width]",
             "decoder": "predicts the pixel values of every patch: tokens [$patches, decoder width] → "
                        "[$patches, $patch_values]"}
    optional_parts = frozenset({"to_decoder"})
    provides = {"patches": "patch tokens per image", "visible": "patch tokens the encoder sees",
                "masked": "patch tokens masked", "encoder_dim": "width of the encoder's tokens",
                "patch_values": "pixel values per patch (the prediction target)"}

    masking_ratio: float = Field(0.75, gt=0, lt=1, description="Share of the patches masked (int(ratio · N)).")

    def roles(self, finder: Finder) -> Roles:
        roles = patch_roles(finder, self)
        check_nothing_skipped(finder, roles, leave_out=("special-tokens",))
        n, d = patch_tokens(finder, roles).dims
        visible = n - masked_count(self.masking_ratio, n)
        finder.check(finder.span(*roles.body), Shape.tokens(visible, d),
                     f"the body runs on the {visible} visible patch tokens alone (no class token, no patch grid)")
        return roles

    def values(self, finder: Finder, roles: Roles) -> dict[str, Any]:
        n, _ = patch_tokens(finder, roles).dims
        masked = masked_count(self.masking_ratio, n)
        return {"patches": n, "visible": n - masked, "masked": masked,
                "encoder_dim": finder.graph.shape(roles.body[1]).features,
                "patch_values": patch_values(finder, roles)}

    def check_parts(self, finder: Finder, roles: Roles, parts: dict) -> None:
        v = self.values(finder, roles)
        width = v["encoder_dim"]
        if parts.get("to_decoder") is not None:
            width = expect(parts["to_decoder"], "to_decoder", (v["visible"], width), None)
        expect(parts["decoder"], "decoder", (v["patches"], width), (v["patches"], v["patch_values"]))

    def own_tensors(self, design) -> dict[str, tuple[int, ...]]:
        return {"mask_token": (design.parts["decoder"].input.dims[1],)}

    def module(self, design, encoder, parts: dict, **kwargs):
        from .mae_module import MAE

        return MAE(design, encoder, parts, self, **kwargs)
