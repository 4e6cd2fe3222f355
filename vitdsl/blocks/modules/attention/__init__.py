"""Attention modules: the shared core (``core``: kernel, heads, scale, explicit switch), the numerics
options and Linear projections every token attention uses (``numerics``), and one file per scope."""
from .core import Attention, Explicit, explicit_attention
from .cross import CrossAttention
from .maps import MapAttention
from .numerics import HeadRMSNorm, SelfAttention
from .tokens import CrossCovarianceAttention, GroupAttention, TokenAttention, padding_keys
from .windows import LocalAttention, RegionalAttention, dynamic_bias_mlp, offsets, relative_index

__all__ = ["Attention", "CrossAttention", "CrossCovarianceAttention", "Explicit", "GroupAttention", "HeadRMSNorm",
           "LocalAttention", "MapAttention", "RegionalAttention", "SelfAttention", "TokenAttention",
           "dynamic_bias_mlp", "explicit_attention", "offsets", "padding_keys", "relative_index"]
