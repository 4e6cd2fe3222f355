"""The MP3 module (torch)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ...blocks.modules.attention import Attention
from ...errors import VitdslError
from ..module import Objective
from .patches import masked_count


class MP3(Objective):
    def __init__(self, design, encoder, parts, spec):
        super().__init__(design, encoder, parts)
        self.masking_ratio = spec.masking_ratio
        # the spec check refuses such layers; an attention that took no context would silently attend to
        # every query instead, so hold the built modules to it as well: every block that declares attention
        # (a block of one's own too) and every built-in attention module, declared or not
        paths = encoder.paths[encoder.paths.index(self.roles.body[0]):encoder.paths.index(self.roles.body[1]) + 1]
        for path in paths:
            module = encoder.get_submodule(path)
            attends = "attention" in encoder.graph.nx.nodes[path]["node"].spec.capabilities
            if (attends or isinstance(module, Attention)) and not getattr(module, "takes_context", False):
                raise VitdslError(f"mp3: the attention module at '{path}' ({type(module).__name__}) cannot take "
                                  "the visible patch tokens as keys and values", path=path)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        tokens = self.embed(self.patch_values(images))
        b, n, _ = tokens.shape
        masked_n = masked_count(self.masking_ratio, n)
        visible = torch.rand(b, n, device=images.device).argsort(dim=-1)[:, masked_n:]
        rows = torch.arange(b, device=images.device)[:, None]
        encoded = self.body(tokens, context=tokens[rows, visible])
        logits = self.head(encoded)
        labels = torch.arange(n, device=images.device).repeat(b)
        return F.cross_entropy(logits.flatten(0, 1), labels)
