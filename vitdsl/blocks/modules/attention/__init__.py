"""Attention modules: the shared core (``core``: kernel, heads, scale, explicit switch), the numerics
options and Linear projections every token attention uses (``numerics``), and one file per scope or
mechanism."""
from .channels import CrossCovarianceAttention
from .core import Attention, Explicit, explicit_attention
from .cross import CrossAttention
from .lsa import LocalitySelfAttention
from .maps import MapAttention
from .memory import MemoryAttention
from .numerics import HeadRMSNorm, SelfAttention
from .sampling import SamplingAttention
from .tokens import GroupAttention, RelPosTokenAttention, TokenAttention
from .windows import LocalAttention, RegionalAttention, dynamic_bias_mlp, offsets, relative_index

__all__ = ["Attention", "CrossAttention", "CrossCovarianceAttention", "Explicit", "GroupAttention", "HeadRMSNorm",
           "LocalAttention", "LocalitySelfAttention", "MapAttention", "MemoryAttention", "RegionalAttention",
           "RelPosTokenAttention", "SamplingAttention", "SelfAttention", "TokenAttention", "dynamic_bias_mlp",
           "explicit_attention", "offsets", "relative_index"]
