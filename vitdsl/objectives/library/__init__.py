"""The objective kinds; importing this registers them."""
from . import mae  # noqa: F401
