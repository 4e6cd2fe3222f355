"""Weight import from lucidrains' vit-pytorch, by reference class.

Each entry says how the reference's state_dict keys map onto the zoo blueprint of that variant
(``blueprints/NAME.yaml``): a list of prefix-rewrite rules and, where the reference numbers its
layers flat, ordinals of our nested block paths (see ``transfer.py``).
"""
from __future__ import annotations

from torch import nn

from ..errors import VitdslError
from .transfer import Rule, import_state_dict

# The token-stack encoder shared by ViT and SimpleViT (vit.Transformer / simple_vit.Transformer).
_ENCODER: list[Rule] = [
    (r"transformer\.norm\.", "norm."),
    (r"transformer\.layers\.(\d+)\.0\.norm\.", r"blocks.\1.attn.norm."),
    (r"transformer\.layers\.(\d+)\.0\.to_qkv\.", r"blocks.\1.attn.qkv."),
    (r"transformer\.layers\.(\d+)\.0\.to_out\.(0\.)?", r"blocks.\1.attn.out."),
    (r"transformer\.layers\.(\d+)\.1\.net\.0\.", r"blocks.\1.ff.norm."),
    (r"transformer\.layers\.(\d+)\.1\.net\.1\.", r"blocks.\1.ff.fc1."),
    (r"transformer\.layers\.(\d+)\.1\.net\.(3|4)\.", r"blocks.\1.ff.fc2."),
]
_PATCHIFY: list[Rule] = [
    (r"to_patch_embedding\.1\.", "patchify.pre_norm."),
    (r"to_patch_embedding\.2\.", "patchify.proj."),
    (r"to_patch_embedding\.3\.", "patchify.post_norm."),
]


def _maxvit_attn(index: int, name: str) -> list[Rule]:
    return [
        (rf"layers\.(\d+)\.{index}\.fn\.norm\.", rf"<block:\1>.{name}.norm."),
        (rf"layers\.(\d+)\.{index}\.fn\.to_qkv\.", rf"<block:\1>.{name}.qkv."),
        (rf"layers\.(\d+)\.{index}\.fn\.to_out\.0\.", rf"<block:\1>.{name}.out."),
        (rf"layers\.(\d+)\.{index}\.fn\.rel_pos_bias\.", rf"<block:\1>.{name}.rel_pos_bias."),
    ]


def _maxvit_ff(index: int, name: str) -> list[Rule]:
    return [(rf"layers\.(\d+)\.{index}\.fn\.net\.0\.", rf"<block:\1>.{name}.norm."),
            (rf"layers\.(\d+)\.{index}\.fn\.net\.1\.", rf"<block:\1>.{name}.fc1."),
            (rf"layers\.(\d+)\.{index}\.fn\.net\.4\.", rf"<block:\1>.{name}.fc2.")]


_MBCONV = {0: "expand.conv", 1: "expand.norm", 3: "depthwise.conv", 4: "depthwise.norm",
           "6.gate.1": "se.reduce", "6.gate.3": "se.expand", 7: "project.conv", 8: "project.norm"}

MAPS: dict[str, tuple[list[Rule], dict[str, str]]] = {
    "vit_pytorch.vit.ViT": (
        [(r"pos_embedding$", "pos_embed.pos"), (r"cls_token$", "tokens.cls"), *_PATCHIFY, *_ENCODER,
         (r"mlp_head\.", "head.fc.")], {}),
    "vit_pytorch.simple_vit.SimpleViT": (
        [*_PATCHIFY, *_ENCODER, (r"linear_head\.", "head.fc.")], {}),
    "vit_pytorch.max_vit.MaxViT": (
        [(r"conv_stem\.(\d+)\.", r"stem.\1.conv."),
         *[(rf"layers\.(\d+)\.0\.(fn\.)?{str(k).replace('.', chr(92) + '.')}\.", rf"<block:\1>.mbconv.{v}.")
           for k, v in _MBCONV.items()],
         *_maxvit_attn(2, "block_attn"), *_maxvit_ff(3, "block_ff"),
         *_maxvit_attn(6, "grid_attn"), *_maxvit_ff(7, "grid_ff"),
         (r"mlp_head\.1\.", "head.norm."), (r"mlp_head\.2\.", "head.fc.")],
        {"block": r"stages\.\d+\.blocks\.\d+"}),
}


def reference_name(reference: nn.Module) -> str:
    cls = type(reference)
    return f"{cls.__module__}.{cls.__name__}"


def import_weights(model: nn.Module, reference: nn.Module) -> dict[str, str]:
    """Copy a vit-pytorch model's weights into the compiled zoo blueprint of the same variant.

    Raises VitdslError if any tensor of either side is left unmatched or does not fit.
    Returns the key map (reference key → blueprint key).
    """
    name = reference_name(reference)
    if name not in MAPS:
        raise VitdslError(f"no weight map for vit-pytorch class '{name}'",
                          hint="supported: " + ", ".join(sorted(MAPS)))
    rules, ordinals = MAPS[name]
    return import_state_dict(model, reference.state_dict(), rules, ordinals, source="vit-pytorch")
