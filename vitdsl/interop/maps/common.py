"""Rules that several vit-pytorch classes share: ``vit.Transformer``-style encoders and the
LN-Linear-LN patch embedding."""
from __future__ import annotations

from ..transfer import DERIVED, Rule

UNUSED = DERIVED  # a reference tensor that an objective holds but never runs (we do not build it)


def encoder(src: str = r"transformer\.", dst: str = "", final_norm: bool = True, block: str = "blocks") -> list[Rule]:
    """``src.layers.I.0`` (pre-norm attention) and ``src.layers.I.1`` (FeedForward) onto
    ``dst{block}.I.attn`` / ``.ff``; ``src.norm`` onto ``dst norm``."""
    rules: list[Rule] = [(rf"{src}norm\.", f"{dst}norm.")] if final_norm else []
    return rules + [
        (rf"{src}layers\.(\d+)\.0\.norm\.", rf"{dst}{block}.\1.attn.norm."),
        (rf"{src}layers\.(\d+)\.0\.to_qkv\.", rf"{dst}{block}.\1.attn.qkv."),
        (rf"{src}layers\.(\d+)\.0\.to_q\.", rf"{dst}{block}.\1.attn.qkv[0]."),
        (rf"{src}layers\.(\d+)\.0\.to_kv\.", rf"{dst}{block}.\1.attn.qkv[1]."),
        (rf"{src}layers\.(\d+)\.0\.to_out\.(0\.)?", rf"{dst}{block}.\1.attn.out."),
        *feedforward(rf"{src}layers\.(\d+)\.1\.", rf"{dst}{block}.\1.ff."),
    ]


def feedforward(src: str, dst: str) -> list[Rule]:
    """vit-pytorch's FeedForward: net = [LN, Linear, GELU, Dropout, Linear, Dropout]."""
    return [(rf"{src}net\.0\.", f"{dst}norm."), (rf"{src}net\.1\.", f"{dst}fc1."),
            (rf"{src}net\.(3|4)\.", f"{dst}fc2.")]


def channel_norm(src: str, dst: str) -> list[Rule]:
    """vit-pytorch's own channel LayerNorm (``g``, ``b`` of shape (1, C, 1, 1)) onto a LayerNorm."""
    return [(src + r"g$", dst + "weight"), (src + r"b$", dst + "bias")]


def channel_feedforward(src: str, dst: str) -> list[Rule]:
    """FeedForward on maps: net = [channel LayerNorm, 1×1 conv, GELU, Dropout, 1×1 conv(, Dropout)]."""
    return [*channel_norm(src + r"net\.0\.", dst + "norm."), (src + r"net\.1\.", dst + "fc1."),
            (src + r"net\.4\.", dst + "fc2.")]


PATCHIFY: list[Rule] = [
    (r"to_patch_embedding\.1\.", "patchify.pre_norm."),
    (r"to_patch_embedding\.2\.", "patchify.proj."),
    (r"to_patch_embedding\.3\.", "patchify.post_norm."),
]


def under(rules: list[Rule], src: str, dst: str) -> list[Rule]:
    """The rules of a model held by a wrapper: ``src`` (a regex) and ``dst`` put before each side."""
    return [(src + pattern, template if template in (None, "<zero>") else dst + template)
            for pattern, template in rules]
