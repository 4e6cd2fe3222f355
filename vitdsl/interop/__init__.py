"""Weight import from reference implementations (vit-pytorch first)."""
from . import vit_pytorch  # noqa: F401
from .transfer import import_state_dict

__all__ = ["import_state_dict", "vit_pytorch"]
