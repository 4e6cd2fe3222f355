"""The MAE module (torch)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ...blocks.modules.common import randn
from ..module import Objective
from .patches import masked_count


class MAE(Objective):
    def __init__(self, design, encoder, parts, spec):
        super().__init__(design, encoder, parts)
        self.masking_ratio = spec.masking_ratio
        self.mask_token = nn.Parameter(randn(*spec.own_tensors(design)["mask_token"]))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        patches = self.patch_values(images)
        b, n, _ = patches.shape
        tokens = self.embed(patches)
        pos = self.patch_positions()
        if pos is not None:
            tokens = tokens + pos
        masked_n = masked_count(self.masking_ratio, n)
        order = torch.rand(b, n, device=images.device).argsort(dim=-1)
        masked, visible = order[:, :masked_n], order[:, masked_n:]
        rows = torch.arange(b, device=images.device)[:, None]
        encoded = self.body(tokens[rows, visible])
        if self.to_decoder is not None:
            encoded = self.to_decoder(encoded)
        full = self.mask_token.to(encoded.dtype).expand(b, n, -1).clone()
        full[rows, visible] = encoded
        predicted = self.decoder(full)[rows, masked]
        return F.mse_loss(predicted, patches[rows, masked])
