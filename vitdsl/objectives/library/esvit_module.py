"""The EsViT module (torch)."""
from __future__ import annotations

import torch
from torch import nn

from .dino_module import SelfDistillation, teacher_probs

EPS = 1e-20  # vit-pytorch's log(softmax + eps), not log_softmax


class EsViT(SelfDistillation):
    students = ("encoder", "projector", "region_projector")

    def __init__(self, design, encoder, parts, spec, **views):
        centres = {"teacher_view": design.parts["projector"].output.features,
                   "teacher_region": design.parts["region_projector"].output.features}
        super().__init__(design, encoder, parts, spec, centres, **views)

    def project(self, networks: nn.Module, images: torch.Tensor):
        """The view logits, the region logits and the regions, (B, K), (B, N, K), (B, N, C)."""
        latent = self.encode(networks, images)
        if latent.dim() == 4:  # a feature map (B, C, H, W): its positions, row-major
            pooled, latent = latent.mean(dim=(2, 3)), latent.flatten(2).transpose(1, 2)
        else:
            pooled = latent.mean(dim=1)
        return networks.projector(pooled), networks.region_projector(latent), latent

    def forward(self, images: torch.Tensor, student_temp: float | None = None,
                teacher_temp: float | None = None) -> torch.Tensor:
        (student_one, student_two), (teacher_one, teacher_two) = self.projections(images)
        s_temp, t_temp = self.temperatures(student_temp, teacher_temp)

        def view_loss(teacher, student):
            probs = teacher_probs(teacher[0], self.teacher_view_centers, t_temp)
            return -(probs * torch.log((student[0] / s_temp).softmax(dim=-1) + EPS)).sum(dim=-1).mean()

        def region_loss(teacher, student):
            probs = teacher_probs(teacher[1], self.teacher_region_centers, t_temp)
            # each student region takes the distribution of the teacher region most like it
            nearest = torch.einsum("bid,bjd->bij", student[2], teacher[2]).max(dim=-1).indices
            probs = probs.gather(1, nearest[..., None].expand(-1, -1, probs.shape[-1]))
            return -(probs * torch.log((student[1] / s_temp).softmax(dim=-1) + EPS)).sum(dim=-1).mean()

        self.last_teacher_view_centers.copy_(torch.cat((teacher_one[0], teacher_two[0])).mean(dim=0))
        self.last_teacher_region_centers.copy_(torch.cat((teacher_one[1], teacher_two[1])).mean(dim=(0, 1)))
        view = (view_loss(teacher_one, student_two) + view_loss(teacher_two, student_one)) / 2
        region = (region_loss(teacher_one, student_two) + region_loss(teacher_two, student_one)) / 2
        return (view + region) / 2
