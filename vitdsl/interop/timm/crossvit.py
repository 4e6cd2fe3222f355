"""CrossViT (Chen, Fan and Panda, 2021) as timm has it: every ``crossvit_*`` model, the † ones (a three-convolution
patch embedding) and the two at 408 (whose large-patch stream sees a 384 resize).

timm numbers the streams 0 (small patches) and 1 (large); ours are ``sm`` and ``lg``. A multi-scale block's
``projs``, ``fusion`` and ``revert_projs`` of stream D are our ``cross-attn`` of that stream: its projection in,
its attention and its projection back out."""
from __future__ import annotations

from ..transfer import Rule
from .layout import block
from .target import Target

_STREAMS = ("sm", "lg")
_SIZES = ("tiny", "small", "base", "9", "15", "18")
_DAGGER = ("9", "15", "18")


def _name(size: str, dagger: bool = False, image: int = 240) -> str:
    return f"crossvit_{size}{'_dagger' if dagger else ''}_{image}"


MODELS: dict[str, Target] = {
    **{_name(size): Target("cross_vit", size, {}) for size in _SIZES},
    **{_name(size, True): Target("cross_vit", size, {"dagger": True}) for size in _DAGGER},
    **{_name(size, True, 408): Target("cross_vit", size, {"dagger": True, "image_size": 408, "sizes": [408, 384]})
       for size in ("15", "18")},
}


def _stream(d: int, s: str) -> list[Rule]:
    ms, ours = r"blocks\.(\d+)\.", rf"encoder.\1.cross.0.branches.{s}.cross_attn."
    blk = rf"blocks\.(\d+)\.blocks\.{d}\.(\d+)\."
    return [
        (rf"pos_embed_{d}$", f"embed.{s}.pos_embed.pos"),
        (rf"cls_token_{d}$", f"embed.{s}.tokens.cls"),
        # †: a Sequential of conv, ReLU, conv, ReLU, conv; ours has each ReLU inside its layer
        *((rf"patch_embed\.{d}\.proj\.{2 * i}\.", f"embed.{s}.patch_embed.{i}.conv.") for i in range(3)),
        (rf"patch_embed\.{d}\.proj\.", f"embed.{s}.patch_embed.0.conv."),
        (blk + r"attn\.qkv\.", rf"encoder.\1.transformer.{s}.blocks.\2.attn.qkv."),
        *block(blk, rf"encoder.\1.transformer.{s}.blocks.\2."),
        (ms + rf"projs\.{d}\.", ours + "project_in."),
        (ms + rf"fusion\.{d}\.norm1\.", ours + "norm."),
        (ms + rf"fusion\.{d}\.attn\.wq\.", ours + "q."),
        (ms + rf"fusion\.{d}\.attn\.wk\.", ours + "kv[0]."),
        (ms + rf"fusion\.{d}\.attn\.wv\.", ours + "kv[1]."),
        (ms + rf"fusion\.{d}\.attn\.proj\.", ours + "out."),
        (ms + rf"revert_projs\.{d}\.", ours + "project_out."),
        (rf"norm\.{d}\.", f"readout.{s}.head.norm."),
        (rf"head\.{d}\.", f"readout.{s}.head.fc."),
    ]


RULES: list[Rule] = [rule for d, s in enumerate(_STREAMS) for rule in _stream(d, s)]
