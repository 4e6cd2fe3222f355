"""MobileViT (Mehta & Rastegari, 2022; v1) as timm has it: ``mobilevit_{xxs,xs,s}``, the zoo's paper variants.

timm builds it as a ByobNet: ``stages.0`` and ``stages.1`` are the inverted residuals of our ``stem`` (one, then
three), ``stages.2``–``stages.4`` each an inverted residual (``.0``, our ``down``) and a MobileViT block (``.1``)
of our ``trunk``. Its inverted residual is a bottleneck block (``conv1_1x1`` expands, ``conv2_kxk`` is the
depthwise conv, ``conv3_1x1`` projects), each conv-BN as ``conv``/``bn``."""
from __future__ import annotations

from ..transfer import Rule
from .layout import block
from .target import Target

MODELS: dict[str, Target] = {f"mobilevit_{size}": Target("mobilevit", size, {}) for size in ("xxs", "xs", "s")}


def _conv_bn(src: str, dst: str) -> list[Rule]:
    """timm's ConvNormAct (``conv``, ``bn``) onto one conv-stem layer."""
    return [(src + r"conv\.", dst + "conv."), (src + r"bn\.", dst + "norm.")]


def _inverted_residual(src: str, dst: str) -> list[Rule]:
    return [rule for part, ours in (("conv1_1x1", "expand"), ("conv2_kxk", "depthwise"), ("conv3_1x1", "project"))
            for rule in _conv_bn(rf"{src}{part}\.", f"{dst}{ours}.")]


_TRUNK = 2  # timm's stage that opens our trunk


RULES: list[Rule] = [
    *_conv_bn(r"stem\.", "conv1.0."),
    *_inverted_residual(r"stages\.0\.0\.", "stem.0.mbconv."),
    *(rule for i in range(3) for rule in _inverted_residual(rf"stages\.1\.{i}\.", f"stem.{i + 1}.mbconv.")),
    *(rule for s in range(_TRUNK, _TRUNK + 3)
      for rule in _inverted_residual(rf"stages\.{s}\.0\.", f"trunk.{s - _TRUNK}.down.")),
    # the MobileViT block: k×k conv-BN-SiLU, bare 1×1 conv, transformer + LayerNorm, 1×1 and k×k fusion convs
    *(rule for s in range(_TRUNK, _TRUNK + 3) for rule in (
        *_conv_bn(rf"stages\.{s}\.1\.conv_kxk\.", f"trunk.{s - _TRUNK}.local.0."),
        (rf"stages\.{s}\.1\.conv_1x1\.", f"trunk.{s - _TRUNK}.local.1.conv."),
        (rf"stages\.{s}\.1\.transformer\.(\d+)\.attn\.qkv\.", rf"trunk.{s - _TRUNK}.transformer.\1.attn.qkv."),
        *block(rf"stages\.{s}\.1\.transformer\.(\d+)\.", rf"trunk.{s - _TRUNK}.transformer.\1."),
        (rf"stages\.{s}\.1\.norm\.", f"trunk.{s - _TRUNK}.norm.norm."),
        *_conv_bn(rf"stages\.{s}\.1\.conv_proj\.", f"trunk.{s - _TRUNK}.project.0."),
        *_conv_bn(rf"stages\.{s}\.1\.conv_fusion\.", f"trunk.{s - _TRUNK}.fuse.0."),
    )),
    *_conv_bn(r"final_conv\.", "conv2.0."),
    (r"head\.fc\.", "head.fc."),
]
