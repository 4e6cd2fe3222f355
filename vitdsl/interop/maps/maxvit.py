"""MaxViT: MBConv, block attention and grid attention per layer, in flat ``layers.I`` order."""
from ..transfer import Rule
from .common import feedforward

_MBCONV = {0: "expand.conv", 1: "expand.norm", 3: "depthwise.conv", 4: "depthwise.norm",
           "6.gate.1": "se.reduce", "6.gate.3": "se.expand", 7: "project.conv", 8: "project.norm"}


def _attn(index: int, name: str) -> list[Rule]:
    return [(rf"layers\.(\d+)\.{index}\.fn\.norm\.", rf"<block:\1>.{name}.norm."),
            (rf"layers\.(\d+)\.{index}\.fn\.to_qkv\.", rf"<block:\1>.{name}.qkv."),
            (rf"layers\.(\d+)\.{index}\.fn\.to_out\.0\.", rf"<block:\1>.{name}.out."),
            (rf"layers\.(\d+)\.{index}\.fn\.rel_pos_bias\.", rf"<block:\1>.{name}.rel_pos_bias.")]


MAPS = {
    "vit_pytorch.max_vit.MaxViT": (
        [(r"conv_stem\.(\d+)\.", r"stem.\1.conv."),
         *[(rf"layers\.(\d+)\.0\.(fn\.)?{str(k).replace('.', chr(92) + '.')}\.", rf"<block:\1>.mbconv.{v}.")
           for k, v in _MBCONV.items()],
         *_attn(2, "block_attn"), *feedforward(r"layers\.(\d+)\.3\.fn\.", r"<block:\1>.block_ff."),
         *_attn(6, "grid_attn"), *feedforward(r"layers\.(\d+)\.7\.fn\.", r"<block:\1>.grid_ff."),
         (r"mlp_head\.1\.", "head.norm."), (r"mlp_head\.2\.", "head.fc.")],
        {"block": r"stages\.\d+\.blocks\.\d+"}),
}
