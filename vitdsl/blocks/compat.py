"""Compatibility overlays: block field defaults that reproduce another library, written once.

Block defaults follow the papers. What a library does differently is an overlay, applied where a blueprint
selects it (``compat: vit-pytorch``, see ``docs/format.md``): each of its rules gives defaults to the fields
of one block (or, with ``block=EVERY``, of every block that has all those fields, so a block added later joins
without being listed), optionally only where the fields written in the blueprint meet a condition. A rule's values
are defaults: a field written in the blueprint wins. A difference that no block default can express (a table
row vit-pytorch allocates but never reads) stays in the blueprint, made conditional on ``$compat``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

from ..errors import VitdslError, suggest

NONE = "none"  # no overlay: the papers' defaults
EVERY = "*"  # a rule's block: every block whose spec has all the fields the rule sets


@dataclass(frozen=True)
class Rule:
    block: str
    defaults: Mapping[str, Any]
    why: str
    # on the fields as written (after $params) and the class the blueprint reproduces (its `reference`)
    when: Callable[[Mapping[str, Any], str | None], bool] | None = None


ATTENTION = ("global-attn", "local-attn", "cross-attn", "separable-attn", "attn-pool", "channel-attn", "lsa-attn",
             "memory-attn", "reduced-attn", "region-attn", "sampling-attn",
             "pool-attn")  # conv-attn has none already
TABLES = (None, "learned", "scalar", "factorized")  # pos-embed kinds with a learned table (None: the default)
# the vit-pytorch classes whose attention is vit.py's (or a copy of it), with its project_out rule
VIT_PY_ATTENTION = frozenset(f"vit_pytorch.{c}" for c in (
    "vit.ViT", "vit_3d.ViT", "vivit.ViViT", "pit.PiT", "t2t.T2TViT", "cross_vit.CrossViT", "parallel_vit.ViT",
    "vit_with_patch_merger.ViT", "distill.DistillWrapper"))

VIT_PYTORCH: tuple[Rule, ...] = (
    Rule("patchify", {"pre_norm": "layer", "post_norm": "layer"},
         "vit-pytorch embeds patches as LayerNorm → Linear → LayerNorm; the ViT paper (and timm) project "
         "the raw patch alone. Only where the patch is projected (dim given).",
         when=lambda f, ref: f.get("dim") is not None),
    Rule(EVERY, {"norm_eps": 1e-5},
         "vit-pytorch's LayerNorms keep PyTorch's eps 1e-5; the papers' code (and timm) use 1e-6. Every block "
         "with a norm_eps field."),
    Rule("pos-embed", {"init_std": 1.0},
         "vit-pytorch draws its position tables with torch.randn, N(0, 1); ViT, DeiT and timm use std 0.02. "
         "Only where there is a table to draw.", when=lambda f, ref: f.get("kind") in TABLES),
    *(Rule(block, {"init_std": 1.0},
           "vit-pytorch draws its class tokens and learned queries with torch.randn, N(0, 1); DeiT and timm "
           "draw them with std 0.02.") for block in ("tokens", "attn-pool", "token-merge")),
    *(Rule(block, {"qkv_bias": False},
           "vit-pytorch's query/key/value projections have no bias; the ViT paper's (and most papers' "
           "code: timm, Swin, CaiT, XCiT, CrossViT, CvT, Twins, MaxViT) have one.") for block in ATTENTION),
    *(Rule(block, {"project_out": "auto"},
           "vit.py's attention (and the models built on it or copying it, VIT_PY_ATTENTION) leaves out the "
           "output projection when heads == 1 and dim_head equals the width; the papers always project.",
           when=lambda f, ref: ref in VIT_PY_ATTENTION) for block in ("global-attn", "cross-attn")),
    *(Rule(block, {"talking_bias": False},
           "vit-pytorch's talking heads (CaiT) mix with two bare (h, h) matrices; CaiT's code (and timm) with "
           "nn.Linear layers over the heads, which have biases.", when=lambda f, ref: f.get("head_mix") == "talking")
      for block in ATTENTION),
    Rule("pool", {"over": "all"},
         "vit-pytorch's mean pool averages every token, its class token included; the papers' code (and timm's "
         "global_pool 'avg') average the patch tokens only.", when=lambda f, ref: f.get("mode", "mean") == "mean"),
    Rule("cross-attn", {"projection": "linear"},
         "vit-pytorch's CrossViT projects a cls token to the other stream's width and back with one Linear map each "
         "way, the residual around both; CrossViT's code (and timm) with LayerNorm → GELU → Linear, the residual "
         "between them."),
    Rule("channel-attn", {"temperature": "exp"},
         "vit-pytorch's XCiT scales the cross-covariance logits by exp(t); XCiT's code (and timm) by t.",
         when=lambda f, ref: f.get("form", "cross-covariance") == "cross-covariance"),
    Rule("dwconv", {"mid_order": "norm-act"},
         "vit-pytorch's local patch interaction (XCiT) runs BatchNorm before GELU; XCiT's code (and timm) after.",
         when=lambda f, ref: f.get("convs", 2) == 2),
    Rule("local-attn", {"bias_index": "vit-pytorch"},
         "vit-pytorch's CrossFormer reads its dynamic bias MLP at shifted offsets, so most query/key pairs get "
         "another offset's bias; the paper gives each pair its own (exact).",
         when=lambda f, ref: f.get("rel_pos_bias") == "dynamic"),
    Rule("region-attn", {"rel_pos_index": "col-major"},
         "vit-pytorch's RegionViT indexes its relative position table column-major (the transpose of the "
         "paper's row-major index), which its weights need."),
)

OVERLAYS: dict[str, tuple[Rule, ...]] = {"vit-pytorch": VIT_PYTORCH}
NAMES = (NONE, *OVERLAYS)


def check_name(name: Any) -> str | None:
    """Why ``name`` is no overlay (the message of an error the caller locates), or None."""
    if name in NAMES:
        return None
    if not isinstance(name, str):
        return f"compat takes an overlay name ({', '.join(NAMES)}), got {name!r}"
    return f"unknown compat overlay '{name}'"


def unknown(name: Any, **where: Any) -> VitdslError | None:
    """The located error for a name that is no overlay, or None."""
    why = check_name(name)
    if why is None:
        return None
    return VitdslError(why, hint=suggest(str(name), NAMES, "overlays"), **where)


def defaults(overlay: str | None, block: str, fields: Mapping[str, Any], reference: str | None = None
             ) -> dict[str, Any]:
    """The field defaults ``overlay`` gives a ``block`` written with ``fields`` in a blueprint that reproduces
    ``reference`` (none for no overlay)."""
    out: dict[str, Any] = {}
    for rule in OVERLAYS.get(overlay or NONE, ()):
        if applies(rule, block) and (rule.when is None or rule.when(fields, reference)):
            out.update(rule.defaults)
    return out


def applies(rule: Rule, block: str) -> bool:
    """Whether ``rule`` is about ``block`` (named, or one of EVERY block with the rule's fields)."""
    if rule.block != EVERY:
        return rule.block == block
    from .base import REGISTRY

    spec = REGISTRY.get(block)
    return spec is not None and all(f in spec.model_fields for f in rule.defaults)


def overlaid(overlay: str | None, block: str, fields: Mapping[str, Any], reference: str | None = None
             ) -> dict[str, Any]:
    """``fields`` with the overlay's defaults under them: a field written in the blueprint wins."""
    return {**defaults(overlay, block, fields, reference), **fields}
