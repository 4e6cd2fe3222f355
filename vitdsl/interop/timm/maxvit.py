"""MaxViT (Tu et al., 2022) as timm has it: the paper's TensorFlow weights, ``maxvit_{tiny,small,base,large,
xlarge}_tf_{224,384,512}``; the 384 and 512 models are the 224 ones at that image size, their block and grid
windows (and so their relative position tables) a 32nd of the image.

timm's MaxViT block holds the MBConv (``conv``) and two partition-attention blocks (``attn_block``, ``attn_grid``)
that each hold their attention and MLP; ours are five blocks in a row. timm keeps the SE and shortcut
convolutions 1×1, ours the SE as Linear maps."""
from __future__ import annotations

import re

from ..transfer import Rule
from .target import Target

_SIZES = ("tiny", "small", "base", "large", "xlarge")


def _overrides(size: str, image: int) -> dict:
    out: dict = {} if image == 224 else {"image_size": image}
    if (size, image) == ("xlarge", 224):  # timm's only xlarge at 224 is the ImageNet-21k model
        out["classes"] = 21843
    return out


MODELS: dict[str, Target] = {
    f"maxvit_{size}_tf_{image}": Target("maxvit", size, _overrides(size, image))
    for size in _SIZES for image in (224, 384, 512)
}

_BLOCK, _OURS = r"stages\.(\d+)\.blocks\.(\d+)\.", r"stages.\1.blocks.\2."
_MBCONV = {"shortcut.expand": "shortcut.conv", "pre_norm": "pre_norm", "conv1_1x1": "expand.conv",
           "norm1": "expand.norm", "conv2_kxk": "depthwise.conv", "norm2": "depthwise.norm", "se.fc1": "se.reduce",
           "se.fc2": "se.expand", "conv3_1x1": "project.conv"}
_PARTITIONS = {"attn_block": ("block_attn", "block_ff"), "attn_grid": ("grid_attn", "grid_ff")}


def _partition(timm: str, attn: str, ff: str) -> list[Rule]:
    src, dst = _BLOCK + timm + r"\.", _OURS
    return [(src + r"norm1\.", dst + f"{attn}.norm."), (src + r"attn\.qkv\.", dst + f"{attn}.qkv."),
            (src + r"attn\.proj\.", dst + f"{attn}.out."),
            (src + r"attn\.rel_pos\.relative_position_bias_table$", dst + f"{attn}.rel_pos_bias.weight"),
            (src + r"norm2\.", dst + f"{ff}.norm."), (src + r"mlp\.fc1\.", dst + f"{ff}.fc1."),
            (src + r"mlp\.fc2\.", dst + f"{ff}.fc2.")]


RULES: list[Rule] = [
    (r"stem\.conv1\.", "stem.0.conv."), (r"stem\.norm1\.", "stem.0.norm."), (r"stem\.conv2\.", "stem.1.conv."),
    *((_BLOCK + r"conv\." + re.escape(k) + r"\.", _OURS + f"mbconv.{v}.") for k, v in _MBCONV.items()),
    *(rule for timm, (attn, ff) in _PARTITIONS.items() for rule in _partition(timm, attn, ff)),
    (r"head\.norm\.", "head.norm."), (r"head\.pre_logits\.fc\.", "head.pre_logits."), (r"head\.fc\.", "head.fc."),
]
ORDINALS: dict[str, str] = {}
