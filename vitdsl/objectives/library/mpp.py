"""Masked patch prediction (Dosovitskiy et al., 2021, §B.1.2): choose a share of the patches, replace some of
them in pixel space by a learned mask patch or by another patch of the same image, run the whole encoder
up to its readout, and classify each chosen patch's mean colour, quantised to a few bits per channel."""
from __future__ import annotations

from typing import Any

from pydantic import Field, PositiveInt, model_validator

from ..roles import Finder, Roles
from ..spec import ObjectiveSpec, PatchRoles, register
from .patches import check_nothing_skipped, chosen_count, expect, patch_roles, patch_tokens, patch_values


@register
class MPPSpec(ObjectiveSpec, PatchRoles):
    """Masked patch prediction: ``ceil(mask_prob · N)`` random patches are chosen; of those, each is replaced
    by a learned mask patch (``replace_prob``) or else by a random patch of the same image
    (``random_patch_prob``), in pixel space, before the encoder's own patch projection, special tokens,
    positions and body. ``to_bits`` classifies every patch token; the loss is the cross-entropy of the
    chosen ones against their mean colour (un-normalised by ``mean``/``std``, clamped at ``max_pixel_val``),
    each channel quantised to ``output_channel_bits``."""

    kind = "mpp"
    reference = "vit_pytorch.mpp.MPP"
    parts = {"to_bits": "scores every quantised mean colour for each patch token: tokens [$patches, "
                        "$encoder_dim] → [$patches, $colours]"}
    provides = {"patches": "patch tokens per image", "chosen": "patches chosen for prediction (ceil(mask_prob · "
                "patches))", "encoder_dim": "width of the encoder's tokens after the body",
                "patch_values": "pixel values per patch (the size of the mask patch)",
                "colours": "quantised mean colours a patch can have: 2^(output_channel_bits · channels)"}

    mask_prob: float = Field(0.15, gt=0, le=1, description="Share of the patches chosen for prediction "
                             "(ceil(mask_prob · N)).")
    replace_prob: float = Field(0.5, ge=0, le=1, description="Chance that a chosen patch is replaced by the "
                                "learned mask patch.")
    random_patch_prob: float = Field(0.5, ge=0, le=1, description="Chance that a chosen patch is replaced by a "
                                     "random patch of the same image instead; at most 1 − replace_prob.")
    output_channel_bits: PositiveInt = Field(3, description="Bits per channel of the quantised mean colour.")
    max_pixel_val: float = Field(1.0, gt=0, description="The largest pixel value (after un-normalising): "
                                 "[0, max_pixel_val] is cut into 2^bits equal bins.")
    mean: list[float] | None = Field(None, min_length=1, description="Per-channel mean the images were "
                                     "normalised with (target = image · std + mean); with std.")
    std: list[float] | None = Field(None, min_length=1, description="Per-channel standard deviation the images "
                                    "were normalised with; with mean.")

    @model_validator(mode="after")
    def _settings(self):
        if self.random_patch_prob + self.replace_prob > 1:
            raise ValueError(f"random_patch_prob {self.random_patch_prob} + replace_prob {self.replace_prob} is "
                             "more than 1: a chosen patch is replaced by the mask patch or by a random one, not both")
        if (self.mean is None) != (self.std is None):
            raise ValueError("mean and std un-normalise the images together: give both or neither")
        return self

    def roles(self, finder: Finder) -> Roles:
        roles = patch_roles(finder, self, keep_special=True)
        if roles.positions and roles.positions not in finder.span(*roles.body):
            # positions added before the special tokens: the encoder runs them (and their dropout) itself
            roles.body = (roles.positions, roles.body[1])
            roles.keep |= set(finder.span(*roles.body))
        check_nothing_skipped(finder, roles)
        node = finder.node(roles.patchify)
        image = finder.graph.nx.nodes[roles.patchify]["inputs"][0]
        # the targets are mean colours of the patch tiles: a patchify of one's own says nothing of its tiles
        unfolds = getattr(node.spec, "unfolds", None)
        if image.kind != "image" or unfolds is None or unfolds() or getattr(node.spec, "shift", 0):
            raise finder.error(f"the patchify layer '{roles.patchify}' does not cut an image into "
                               "non-overlapping patches; the target is each patch's mean colour",
                               "patchify the image itself, without stride, padding or shift")
        channels = image.features
        for name in ("mean", "std"):
            given = getattr(self, name)
            if given is not None and len(given) not in (1, channels):
                raise finder.error(f"{name} has {len(given)} values for {channels} channels",
                                   "give one value per channel, or one for all")
        tokens = patch_tokens(finder, roles)
        n = tokens.dims[0]
        out = finder.check(finder.span(*roles.body), tokens, f"the body runs on the encoder's own {n} patch tokens")
        if out.kind != "tokens" or out.dims[0] != n + out.prefix + out.suffix:
            raise finder.error(f"the body turns the {n} patch tokens into {out}; the objective classifies each "
                               "patch token, so it needs one per patch",
                               "choose a body that keeps one token per patch: body: [first, last]")
        return roles

    def values(self, finder: Finder, roles: Roles) -> dict[str, Any]:
        n, _ = patch_tokens(finder, roles).dims
        channels = finder.graph.nx.nodes[roles.patchify]["inputs"][0].features
        bits = self.output_channel_bits * channels
        if bits >= 48:  # checked before 2**bits, which for huge settings would never finish
            raise finder.error(f"2^(output_channel_bits · channels) = 2^{bits:,} colours: the to_bits part could "
                               "not hold a logit for each", "use fewer bits per channel (3 in the paper)")
        return {"patches": n, "chosen": chosen_count(self.mask_prob, n),
                "encoder_dim": finder.graph.shape(roles.body[1]).features,
                "patch_values": patch_values(finder, roles),
                "colours": 2 ** (self.output_channel_bits * channels)}

    def check_parts(self, finder: Finder, roles: Roles, parts: dict) -> None:
        v = self.values(finder, roles)
        expect(parts["to_bits"], "to_bits", (v["patches"], v["encoder_dim"]), (v["patches"], v["colours"]))

    def own_tensors(self, design) -> dict[str, tuple[int, ...]]:
        return {"mask_token": (design.values["patch_values"],)}

    def module(self, design, encoder, parts: dict, **kwargs):
        from .mpp_module import MPP

        return MPP(design, encoder, parts, self, **kwargs)
