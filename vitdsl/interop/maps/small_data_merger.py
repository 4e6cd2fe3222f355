"""ViT for small datasets (SPT + LSA) and the PatchMerger ViT, with their standalone SPT and PatchMerger."""
from ..transfer import Rule
from .common import PATCHIFY, encoder, feedforward

_SPT: list[Rule] = [(r"to_patch_tokens\.1\.", "patchify.pre_norm."), (r"to_patch_tokens\.2\.", "patchify.proj.")]


def _layers(src: str, dst: str) -> list[Rule]:
    """vit-pytorch's flat ``layers.I`` onto our attn/ff pairs, wherever the blueprint splits the stack."""
    return [(rf"{src}(\d+)\.0\.norm\.", rf"{dst}.attn.norm."), (rf"{src}(\d+)\.0\.to_qkv\.", rf"{dst}.attn.qkv."),
            (rf"{src}(\d+)\.0\.to_out\.0\.", rf"{dst}.attn.out."), *feedforward(rf"{src}(\d+)\.1\.", f"{dst}.ff.")]


MAPS = {
    "vit_pytorch.vit_for_small_dataset.ViT": (
        [(r"pos_embedding$", "pos_embed.pos"), (r"cls_token$", "tokens.cls"),
         *[(r"to_patch_embedding\." + src, dst) for src, dst in _SPT],
         (r"transformer\.layers\.(\d+)\.0\.temperature$", r"blocks.\1.attn.temperature"),
         *encoder(final_norm=False), (r"mlp_head\.0\.", "head.norm."), (r"mlp_head\.1\.", "head.fc.")], {}),
    "vit_pytorch.vit_for_small_dataset.SPT": (_SPT, {}),
    "vit_pytorch.vit_with_patch_merger.ViT": (
        [(r"pos_embedding$", "pos_embed.pos"), *PATCHIFY, (r"transformer\.norm\.", "norm."),
         (r"transformer\.patch_merger\.", "merger."), *_layers(r"transformer\.layers\.", r"<layer:\1>"),
         (r"mlp_head\.1\.", "head.fc.")],
        {"layer": r"(blocks|merged_blocks)\.\d+"}),
    "vit_pytorch.vit_with_patch_merger.PatchMerger": ([(r"", "merger.")], {}),
}
