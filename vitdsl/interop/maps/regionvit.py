"""RegionViT: the local and region tokenizers, per stage the one downsample conv (shared by both streams,
so it fills both of our tied tensors), the PEG, and the R2L layers with one bias table per stage."""
from ..transfer import Rule

_STAGE = r"layers\.(\d+)\."
_LAYER = _STAGE + r"2\.layers\.(\d+)\."

RULES: list[Rule] = [
    (r"local_encoder\.weight", "local_conv.0.conv.weight"),
    (r"local_encoder\.bias", "local_conv.0.conv.bias"),
    *[(rf"local_encoder\.{ref}\.", f"local_3conv.{ours}.conv.") for ref, ours in ((0, 0), (3, 1), (6, 2))],
    *[(rf"local_encoder\.{ref}\.{p}$", f"local_3conv.{ours}.norm.{t}")
      for ref, ours in ((1, 0), (4, 1)) for p, t in (("g", "weight"), ("b", "bias"))],
    (r"region_encoder\.1\.", "region.proj."),
    (_STAGE + r"0\.conv\.", r"stages.\1.local.depthwise."),
    (_STAGE + r"1\.proj\.", r"stages.\1.peg.conv1."),
    (_STAGE + r"2\.local_rel_pos_bias\.", r"stages.\1.blocks.0.attn.rel_pos_bias."),
    (_LAYER + r"0\.norm\.", r"stages.\1.blocks.\2.attn.norm."),
    (_LAYER + r"0\.to_qkv\.", r"stages.\1.blocks.\2.attn.qkv."),
    (_LAYER + r"0\.to_out\.0\.", r"stages.\1.blocks.\2.attn.out."),
    (_LAYER + r"1\.0\.", r"stages.\1.blocks.\2.ff.norm."),
    (_LAYER + r"1\.1\.", r"stages.\1.blocks.\2.ff.fc1."),
    (_LAYER + r"1\.4\.", r"stages.\1.blocks.\2.ff.fc2."),
    (r"to_logits\.1\.", "head.norm."),
    (r"to_logits\.2\.", "head.fc."),
]

MAPS = {"vit_pytorch.regionvit.RegionViT": (RULES, {})}
