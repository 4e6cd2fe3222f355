"""Variants with several token branches: Parallel ViT (parallel attention / MLP branches) and
CrossViT (two patch sizes fused by cross attention)."""
from .common import encoder, feedforward

_PAR = r"transformer\.layers\.(\d+)\."
_MS = r"multi_scale_encoder\.layers\.(\d+)\."


def _stream(name: str) -> list:
    """One stream's embedding and head (the branch ``name`` of the parallel items ``embed`` and ``readout``)."""
    return [(rf"{name}_image_embedder\.to_patch_embedding\.1\.", f"embed.{name}.patchify.pre_norm."),
            (rf"{name}_image_embedder\.to_patch_embedding\.2\.", f"embed.{name}.patchify.proj."),
            (rf"{name}_image_embedder\.to_patch_embedding\.3\.", f"embed.{name}.patchify.post_norm."),
            (rf"{name}_image_embedder\.pos_embedding$", f"embed.{name}.pos_embed.pos"),
            (rf"{name}_image_embedder\.cls_token$", f"embed.{name}.tokens.cls"),
            (rf"{name}_mlp_head\.0\.", f"readout.{name}.head.norm."),
            (rf"{name}_mlp_head\.1\.", f"readout.{name}.head.fc.")]


def _cross(index: int, name: str) -> list:
    src = _MS + rf"2\.layers\.(\d+)\.{index}\."
    dst = rf"encoder.\1.cross.\2.branches.{name}.cross_attn."
    return [(src + r"project_in\.", dst + "project_in."), (src + r"project_out\.", dst + "project_out."),
            (src + r"fn\.norm\.", dst + "norm."), (src + r"fn\.to_q\.", dst + "q."),
            (src + r"fn\.to_kv\.", dst + "kv."), (src + r"fn\.to_out\.0\.", dst + "out.")]

MAPS = {
    "vit_pytorch.parallel_vit.ViT": (
        [(r"pos_embedding$", "pos_embed.pos"), (r"cls_token$", "tokens.cls"),
         (r"to_patch_embedding\.1\.", "patchify.proj."),
         (_PAR + r"0\.fns\.(\d+)\.norm\.", r"blocks.\1.attn.\2.global_attn.norm."),
         (_PAR + r"0\.fns\.(\d+)\.to_qkv\.", r"blocks.\1.attn.\2.global_attn.qkv."),
         (_PAR + r"0\.fns\.(\d+)\.to_out\.0\.", r"blocks.\1.attn.\2.global_attn.out."),
         *feedforward(_PAR + r"1\.fns\.(\d+)\.", r"blocks.\1.ff.\2.mlp."),
         (r"mlp_head\.0\.", "head.norm."), (r"mlp_head\.1\.", "head.fc.")], {}),
    "vit_pytorch.cross_vit.CrossViT": (
        [*_stream("sm"), *_stream("lg"),
         *[rule for i, name in enumerate(("sm", "lg")) for rule in [
             (_MS + rf"{i}\.norm\.", rf"encoder.\1.transformer.{name}.norm."),
             *[(p.replace(r"transformer\.layers\.(\d+)\.", _MS + rf"{i}\.layers\.(\d+)\."),
                t.replace(r"blocks.\1.", rf"encoder.\1.transformer.{name}.blocks.\2."))
               for p, t in encoder(final_norm=False)]]],
         *_cross(0, "sm"), *_cross(1, "lg")], {}),
}
