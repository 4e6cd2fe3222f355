"""The SimMIM module (torch)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ...blocks.modules.common import randn
from ..module import Objective
from .patches import masked_count


class SimMIM(Objective):
    def __init__(self, design, encoder, parts, spec):
        super().__init__(design, encoder, parts)
        self.masking_ratio = spec.masking_ratio
        self.mask_token = nn.Parameter(randn(*spec.own_tensors(design)["mask_token"]))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        patches = self.patch_values(images)
        b, n, _ = patches.shape
        tokens = self.embed(patches)
        mask_tokens = self.mask_token.to(tokens.dtype).expand(b, n, -1)
        pos = self.patch_positions()
        if pos is not None:  # the mask token takes the position of the patch it stands in for
            tokens, mask_tokens = tokens + pos, mask_tokens + pos
        masked_n = masked_count(self.masking_ratio, n)
        masked = torch.rand(b, n, device=images.device).topk(k=masked_n, dim=-1).indices
        is_masked = torch.zeros(b, n, dtype=torch.bool, device=images.device).scatter_(-1, masked, True)
        encoded = self.body(torch.where(is_masked[..., None], mask_tokens, tokens))
        rows = torch.arange(b, device=images.device)[:, None]
        predicted = self.to_pixels(encoded[rows, masked])
        return F.l1_loss(predicted, patches[rows, masked]) / masked_n
