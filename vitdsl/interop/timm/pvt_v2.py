"""PVT v2 (Wang et al., 2022) as timm has it: ``pvt_v2_b0`` … ``pvt_v2_b5`` and the linear ``pvt_v2_b2_li``.

timm embeds the first stage's patches in ``patch_embed`` and every later stage's in ``stages.S.downsample``;
both are our stage's ``embed`` convolution and its LayerNorm. The attention's spatial reduction ``sr`` and its
LayerNorm ``norm`` are our ``attn.sr`` and ``attn.sr_norm``; the stage's closing ``norm`` is our stage's norm
block, whose LayerNorm sits one level deeper on a map."""
from __future__ import annotations

from ..transfer import Rule
from .layout import block
from .target import Target

MODELS: dict[str, Target] = {f"pvt_v2_{size}": Target("pvt_v2", size, {})
                             for size in ("b0", "b1", "b2", "b3", "b4", "b5", "b2_li")}

_BLOCK, _OURS = r"stages\.(\d+)\.blocks\.(\d+)\.", r"stages.\1.blocks.\2."

RULES: list[Rule] = [
    (r"patch_embed\.proj\.", "stages.0.embed.0.conv."),
    (r"patch_embed\.norm\.", "stages.0.embed.0.norm."),
    (r"stages\.(\d+)\.downsample\.proj\.", r"stages.\1.embed.0.conv."),
    (r"stages\.(\d+)\.downsample\.norm\.", r"stages.\1.embed.0.norm."),
    *block(_BLOCK, _OURS),
    (_BLOCK + r"attn\.q\.", _OURS + "attn.q."),
    (_BLOCK + r"attn\.kv\.", _OURS + "attn.kv."),
    (_BLOCK + r"attn\.sr\.", _OURS + "attn.sr."),
    (_BLOCK + r"attn\.norm\.", _OURS + "attn.sr_norm."),
    (_BLOCK + r"mlp\.dwconv\.", _OURS + "ff.dwconv."),
    (r"stages\.(\d+)\.norm\.", r"stages.\1.norm.norm."),
    (r"head\.", "head.fc."),
]
