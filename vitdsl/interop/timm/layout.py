"""timm's pre-norm transformer block, written once for the families whose blocks follow it (ViT, DeiT, CaiT,
PiT, XCiT): ``norm1`` → attention → ``attn.proj``, ``norm2`` → ``mlp.fc1``/``fc2``, optional LayerScale."""
from __future__ import annotations

from ..transfer import Rule


def block(src: str, dst: str, scale: tuple[str, str] | None = None) -> list[Rule]:
    """Rules from timm block keys ``src`` (a regex prefix, e.g. ``blocks\\.(\\d+)\\.``) onto our attn/ff pair under
    ``dst`` (``blocks.\\1.``): the norms, the attention's output projection, the MLP and, when the block has
    LayerScale, its two gammas named by ``scale`` (regexes, e.g. ``ls1\\.gamma``). The attention's inputs
    (qkv, talking heads, class attention's q/k/v) differ by family and stay with it."""
    rules = [(src + r"norm1\.", dst + "attn.norm."), (src + r"attn\.proj\.", dst + "attn.out."),
             (src + r"norm2\.", dst + "ff.norm."), (src + r"mlp\.fc1\.", dst + "ff.fc1."),
             (src + r"mlp\.fc2\.", dst + "ff.fc2.")]
    if scale:
        rules += [(src + scale[0] + "$", dst + "attn.gamma"), (src + scale[1] + "$", dst + "ff.gamma")]
    return rules
