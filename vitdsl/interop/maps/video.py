"""Video: 3-D ViT, 3-D SimpleViT, 3-D CCT and ViViT (both of its variants)."""
from .cct import MAPS as _CCT
from .common import PATCHIFY, encoder, feedforward


def _stage(src: str, stage: int) -> list:
    """A ``vit.Transformer``-style encoder ``src`` (final norm included) onto a stage of ``enc``: its
    repeat ``blocks`` and the norm after it."""
    return encoder(rf"{src}\.", f"enc.{stage}.")


def _attention(index: int, name: str) -> list:
    src = rf"factorized_transformer\.layers\.(\d+)\.{index}\."
    return [(rf"{src}norm\.", rf"blocks.\1.{name}.norm."), (rf"{src}to_qkv\.", rf"blocks.\1.{name}.qkv."),
            (rf"{src}to_out\.(0\.)?", rf"blocks.\1.{name}.out.")]


MAPS = {
    "vit_pytorch.vit_3d.ViT": (
        [(r"pos_embedding$", "pos_embed.pos"), (r"cls_token$", "tokens.cls"), *PATCHIFY,
         *encoder(final_norm=False), (r"mlp_head\.0\.", "head.norm."), (r"mlp_head\.1\.", "head.fc.")], {}),
    "vit_pytorch.simple_vit_3d.SimpleViT": (
        [*PATCHIFY, *encoder(), (r"linear_head\.", "head.fc.")], {}),
    "vit_pytorch.cct_3d.CCT": _CCT["vit_pytorch.cct.CCT"],
    "vit_pytorch.vivit.ViViT": (
        [*PATCHIFY, (r"pos_embedding$", "pos_embed.pos"), (r"spatial_cls_token$", "spatial_cls.cls"),
         (r"temporal_cls_token$", "enc.0.tokens.cls"),
         *_stage("spatial_transformer", 0), *_stage("temporal_transformer", 1),
         # factorized_self_attention: (spatial attention, temporal attention, feedforward) per layer
         (r"factorized_transformer\.norm\.", "norm."), *_attention(0, "attn"), *_attention(1, "temporal_attn"),
         *feedforward(r"factorized_transformer\.layers\.(\d+)\.2\.", r"blocks.\1.ff."),
         (r"mlp_head\.", "head.fc.")], {}),
}
