"""The MPP module (torch). Its random draws follow vit-pytorch's MPP call for call (the chosen patches, the
random-patch coin on the CPU generator, the source patches, the mask coin on the CPU generator), so the
same seed gives the same loss."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ...blocks.modules.common import randn
from ..module import Objective
from .patches import chosen_count


def coin(b: int, n: int, prob: float, device) -> torch.Tensor:
    """(b, n) bools, true with chance ``prob``, drawn on the CPU as vit-pytorch's prob_mask_like. torch.rand
    draws the very numbers of its zeros().uniform_(0, 1), and exports (to ONNX too, where an in-place uniform_
    has no counterpart)."""
    return (torch.rand((b, n)) < prob).to(device)


class MPP(Objective):
    def __init__(self, design, encoder, parts, spec):
        super().__init__(design, encoder, parts)
        self.spec = spec
        self.patch = self.encoder.get_submodule(self.roles.patchify).patch
        self.mask_token = nn.Parameter(randn(*spec.own_tensors(design)["mask_token"]))
        out = design.encoder.shape(self.roles.body[1])
        self.special = out.prefix  # the patch tokens follow the leading special tokens
        for name in ("mean", "std"):
            value = getattr(spec, name)
            self.register_buffer(name, torch.tensor(value).view(-1, 1, 1) if value else None, persistent=False)

    def targets(self, images: torch.Tensor) -> torch.Tensor:
        """(B, N) class of each patch's quantised mean colour, as vit-pytorch's MPPLoss."""
        spec, (ph, pw) = self.spec, self.patch
        if self.mean is not None:
            images = images * self.std + self.mean
        images = images.clamp(max=spec.max_pixel_val)
        b, c, h, w = images.shape
        mean = images.reshape(b, c, h // ph, ph, w // pw, pw).mean(dim=(3, 5))
        mean = mean.permute(0, 2, 3, 1).reshape(b, -1, c).contiguous()
        bin_size = spec.max_pixel_val / 2 ** spec.output_channel_bits
        bins = torch.bucketize(mean, torch.arange(bin_size, spec.max_pixel_val, bin_size, device=images.device))
        place = (2 ** spec.output_channel_bits) ** torch.arange(0, c, device=images.device).long()
        return (bins * place).sum(dim=-1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        spec, device = self.spec, images.device
        images = images.detach()
        patches = self.patch_values(images)
        b, n, _ = patches.shape
        chosen_idx = torch.rand((b, n), device=device).topk(chosen_count(spec.mask_prob, n), dim=-1).indices
        chosen = torch.zeros((b, n), dtype=torch.bool, device=device).scatter_(1, chosen_idx, True)
        x = patches
        if spec.random_patch_prob > 0:
            swap = chosen & coin(b, n, spec.random_patch_prob / (1 - spec.replace_prob), device)
            source = torch.randint(0, n, (b, n), device=device)
            others = patches[torch.arange(b, device=device)[:, None], source]
            x = torch.where(swap[..., None], others, x)
        replace = chosen & coin(b, n, spec.replace_prob, device)
        x = torch.where(replace[..., None], self.mask_token.to(x.dtype), x)
        encoded = self.body(self.embed(x))
        logits = self.to_bits(encoded[:, self.special:self.special + n])
        # the chosen patches in the order a boolean mask reads them (row by row, ascending), gathered by index:
        # the same elements in the same order as logits[chosen] (so the same loss, bit for bit), with a shape
        # known before the draw (every row has the same count), which torch.compile and export need
        chosen_idx = chosen_idx.sort(dim=-1).values
        picked = logits.gather(1, chosen_idx[..., None].expand(-1, -1, logits.shape[-1]))
        return F.cross_entropy(picked.flatten(0, 1), self.targets(images).gather(1, chosen_idx).flatten())
