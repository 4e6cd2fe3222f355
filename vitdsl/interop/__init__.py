"""Weight import from reference implementations (vit-pytorch; timm through ``vitdsl.interop.timm``),
pretrained files and the transplant planner (``pretrained``), and ``verify``."""
from . import pretrained, verify, vit_pytorch  # noqa: F401
from .transfer import import_state_dict

__all__ = ["import_state_dict", "pretrained", "verify", "vit_pytorch"]
