"""LeViT (Graham et al., 2021) as timm has it: ``levit_<variant>`` and ``levit_conv_<variant>``, the same model
in 1×1 convolutions and BatchNorm2d (our projections are 1×1 convolutions: timm's Linear weights take their
shape across the singleton dimensions).

timm numbers its stages 0-2 with the shrink attention that opens stage S (S ≥ 1) as its ``downsample``; the
zoo's first stage is the top-level ``blocks`` and ``stages.S - 1`` holds the shrink and blocks of timm's S.
A Linear-BN pair (timm's LinearNorm, ConvNorm) is a projection's ``conv`` and ``norm``, or an output's
``out`` and ``out_norm``, or an MLP's ``fcN`` and ``fcN_norm``. The bias index tables are not saved."""
from __future__ import annotations

from ..transfer import Rule
from .target import Target

_VARIANTS = ("128s", "128", "192", "256", "256d", "384", "384_s8", "512", "512_s8", "512d")
_STAGES = 3

MODELS: dict[str, Target] = {
    **{f"levit_{v}": Target("levit", v, {}) for v in _VARIANTS},
    **{f"levit_conv_{v}": Target("levit", v, {}) for v in _VARIANTS},
}


def _linear_norm(src: str, dst: str, weight: str = "conv.", norm: str = "norm.") -> list[Rule]:
    """timm's Linear-BN ``src`` (``linear``, ``bn``) onto our ``dst`` + ``weight`` / ``norm``."""
    return [(src + r"linear\.", dst + weight), (src + r"bn\.", dst + norm)]


def _attention(src: str, dst: str) -> list[Rule]:
    """A block's or a shrink's attention: its projections (qkv, or q and kv), output and bias table."""
    return [(src + r"attention_biases$", dst + "pos_table"),
            *_linear_norm(src + r"qkv\.", dst + "qkv."),
            *_linear_norm(src + r"kv\.", dst + "kv."),
            *_linear_norm(src + r"q\.ln\.", dst + "q."),
            *_linear_norm(src + r"proj\.ln\.", dst, "out.", "out_norm.")]


def _mlp(src: str, dst: str) -> list[Rule]:
    return [*_linear_norm(src + r"ln1\.", dst, "fc1.", "fc1_norm."),
            *_linear_norm(src + r"ln2\.", dst, "fc2.", "fc2_norm.")]


def _stage(s: int) -> list[Rule]:
    blocks, ours = rf"stages\.{s}\.blocks\.(\d+)\.", r"blocks.\1." if s == 0 else rf"stages.{s - 1}.blocks.\1."
    rules = [*_attention(blocks + r"attn\.", ours + "attn."), *_mlp(blocks + r"mlp\.", ours + "ff.")]
    if s:
        shrink, at = rf"stages\.{s}\.downsample\.", f"stages.{s - 1}.shrink.0."
        rules += [*_attention(shrink + r"attn_downsample\.", at + "attn."), *_mlp(shrink + r"mlp\.", at + "ff.")]
    return rules


RULES: list[Rule] = [
    *(rule for i in range(4) for rule in _linear_norm(rf"stem\.conv{i + 1}\.", f"stem.{i}.")),
    *(rule for s in range(_STAGES) for rule in _stage(s)),
    *_linear_norm(r"head\.", "head.", "fc.", "norm."),
    *_linear_norm(r"head_dist\.", "dist_head.", "fc.", "norm."),
]
ORDINALS: dict[str, str] = {}
