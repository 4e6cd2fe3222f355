"""Default image augmentations of the self-distillation objectives (DINO, EsViT), on batched tensors with
kornia (the optional extra ``augment``), imported only when a default is first used.

vit-pytorch builds the same pipeline from torchvision transforms, which draw one set of random parameters
per batch; kornia draws them per image.
"""
from __future__ import annotations

from ..errors import VitdslError

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)  # ImageNet's, as vit-pytorch normalises


def kornia_augmentation():
    try:
        import kornia.augmentation as K
    except ImportError:
        raise VitdslError("the default augmentations of DINO and EsViT need kornia, which is not installed",
                          hint="pip install vitdsl[augment], or pass your own functions: "
                               "vitdsl.build(..., augment=f, augment2=f, local_crop=f, global_crop=f)") from None
    return K


def byol_augment():
    """BYOL's augmentation, as vit-pytorch's DINO: colour jitter (p 0.3), grey (p 0.2), horizontal flip,
    Gaussian blur (p 0.2), then ImageNet normalisation."""
    import torch

    K = kornia_augmentation()
    return torch.nn.Sequential(
        K.ColorJitter(0.8, 0.8, 0.8, 0.2, p=0.3),
        K.RandomGrayscale(p=0.2),
        K.RandomHorizontalFlip(),
        K.RandomGaussianBlur((3, 3), (1.0, 2.0), p=0.2),
        K.Normalize(mean=torch.tensor(MEAN), std=torch.tensor(STD)),
    )


def random_resized_crop(size: tuple[int, int], scale: tuple[float, float]):
    """A crop covering a random share ``scale`` of the image (aspect 3/4 … 4/3), resized to ``size``."""
    return kornia_augmentation().RandomResizedCrop(size, scale=scale)
