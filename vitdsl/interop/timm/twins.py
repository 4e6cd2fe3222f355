"""Twins (Chu et al., 2021) as timm has it: ``twins_svt_{small,base,large}`` and ``twins_pcpvt_{small,base,large}``.

timm numbers a stage's blocks flatly (``blocks.S.I``); in SVT they alternate local (even I) and global
attention, which our ``twins_svt`` pairs as ``blocks.I // 2.local_*`` and ``.global_*``: the ordinal ``blkS``
lists our blocks' attention/MLP prefixes in that order (PCPVT's ``blocks.I.`` as they are). Its position
generator ``pos_block.S`` is our PEG in the stage's first block (``local_peg`` in SVT, after the local block)."""
from __future__ import annotations

from ..transfer import Rule
from .layout import block
from .target import Target

_SIZES = ("small", "base", "large")
_STAGES = 4

MODELS: dict[str, Target] = {f"twins_{kind}_{size}": Target(f"twins_{kind}", size, {})
                             for kind in ("pcpvt", "svt") for size in _SIZES}

_BLOCK, _OURS = r"blocks\.(\d+)\.(\d+)\.", r"<blk\1:\2>"

RULES: list[Rule] = [
    (r"patch_embeds\.(\d+)\.proj\.", r"<reshape>stages.\1.patchify.proj."),  # p×p conv → (c p1 p2) projection
    (r"patch_embeds\.(\d+)\.norm\.", r"stages.\1.patchify.post_norm."),
    *block(_BLOCK, _OURS),
    (_BLOCK + r"attn\.qkv\.", _OURS + "attn.qkv."),  # SVT's local attention
    (_BLOCK + r"attn\.q\.", _OURS + "attn.q."),  # global sub-sampled attention
    (_BLOCK + r"attn\.kv\.", _OURS + "attn.kv."),
    (_BLOCK + r"attn\.sr\.", _OURS + "attn.sr."),
    (_BLOCK + r"attn\.norm\.", _OURS + "attn.sr_norm."),
    (r"pos_block\.(\d+)\.proj\.0\.", r"<peg:\1>conv1."),
    (r"norm\.", "<final:0>"),  # on a map (SVT) a channel norm keeps its LayerNorm one level deeper
    (r"head\.", "head.fc."),
]
ORDINALS: dict[str, str] = {
    **{f"blk{s}": rf"stages\.{s}\.blocks\.\d+\.(?:local_|global_)?(?=attn\.|ff\.)" for s in range(_STAGES)},
    "peg": r"stages\.\d+\.blocks\.0\.(?:local_)?peg\.",
    "final": r"norm\.(?:norm\.)?(?=weight$|bias$)",
}
