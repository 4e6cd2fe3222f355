"""Options that left a block for a block of their own. A blueprint that still writes one gets a located
error that names the new spelling, instead of "unknown field"; the loader reads this table."""
from __future__ import annotations

from typing import Any

# (block, field, value: None for any) → (message, hint); the hint may use {value}, the value given
MOVED: dict[tuple[str, str, Any], tuple[str, str]] = {
    ("global-attn", "samples", None): (
        "global-attn no longer samples tokens: adaptive token sampling (ATS) is a block of its own",
        "write '- sampling-attn: {{samples: {value}, ...}}' with the other fields as they are"),
    ("global-attn", "over", "channels"): (
        "global-attn no longer attends over channels: XCiT's cross-covariance attention is a block of its own",
        "write '- channel-attn: {{...}}' with the other fields as they are, and no over"),
    ("global-attn", "kv_reduction", None): (
        "global-attn no longer sub-samples keys and values: attention over a feature map is a block of its own",
        "write '- reduced-attn: {{kv_reduction: {value}, ...}}' with the other fields as they are"),
    ("global-attn", "value_conv", None): (
        "global-attn no longer convolves the values: attention over a feature map is a block of its own",
        "write '- reduced-attn: {{value_conv: {value}, ...}}' with the other fields as they are"),
    ("global-attn", "dim_value", None): (
        "global-attn no longer sets the values' width: attention over a feature map is a block of its own",
        "write '- reduced-attn: {{dim_value: {value}, ...}}' with the other fields as they are"),
    ("global-attn", "memories", None): (
        "global-attn no longer holds memories: learnable-memory attention is a block of its own",
        "write '- memory-attn: {{memories: {value}, ...}}' with the other fields as they are"),
    ("global-attn", "task_tokens", None): (
        "global-attn no longer isolates task tokens: learnable-memory attention is a block of its own",
        "write '- memory-attn: {{task_tokens: {value}, ...}}' with the other fields as they are"),
    ("global-attn", "temperature", None): (
        "global-attn no longer learns its temperature: locality self-attention (LSA) is a block of its own",
        "write '- lsa-attn: {{...}}' with the other fields as they are (it learns the temperature and masks "
        "each token's own key unless told not to)"),
    ("global-attn", "mask_self", None): (
        "global-attn no longer masks each token's own key: locality self-attention (LSA) is a block of its own",
        "write '- lsa-attn: {{...}}' with the other fields as they are (it learns the temperature and masks "
        "each token's own key unless told not to)"),
    ("local-attn", "region_tokens", None): (
        "local-attn no longer takes region tokens: RegionViT's regional-to-local attention is a block of its own",
        "write '- region-attn: {{...}}' with the other fields as they are, and no region_tokens"),
    ("local-attn", "rel_pos_index", None): (
        "local-attn no longer takes rel_pos_index: the transposed bias index is RegionViT's, an option of region-attn",
        "write '- region-attn: {{rel_pos_index: {value}, ...}}' on tokens led by region tokens, or leave it out"),
}


def moved(block: str, given: dict[str, Any]) -> tuple[str, str, str] | None:
    """(field, message, hint) for the first option in ``given`` (field → value) that moved, or None."""
    for (name, field, value), (message, hint) in MOVED.items():
        if name == block and field in given and value in (None, given[field]):
            return field, message, hint.format(value=given[field])
    return None
