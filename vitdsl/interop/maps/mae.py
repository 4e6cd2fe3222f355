"""MAE and SimMIM around a ViT: the encoder's layers under ``encoder.``, the class token and classifier
head (held by the reference, never run) left out."""
from .common import UNUSED, encoder, under
from .vit import MAPS as VIT

VIT_ENCODER = [(r"cls_token$", UNUSED), (r"mlp_head\.", UNUSED), *VIT["vit_pytorch.vit.ViT"][0]]
# the wrappers hold the encoder's patch embedding a second time (to_patch_embedding[1:], the same tensors)
PATCH_TO_EMB = [(r"patch_to_emb\.0\.", "encoder.patchify.pre_norm."), (r"patch_to_emb\.1\.", "encoder.patchify.proj."),
                (r"patch_to_emb\.2\.", "encoder.patchify.post_norm.")]

MAPS = {
    "vit_pytorch.mae.MAE": (
        [*under(VIT_ENCODER, r"encoder\.", "encoder."), *PATCH_TO_EMB, (r"enc_to_dec\.", "to_decoder.head.fc."),
         (r"mask_token$", "mask_token"), (r"decoder_pos_emb\.weight$", "decoder.pos_embed.pos"),
         *encoder(r"decoder\.", "decoder."), (r"to_pixels\.", "decoder.to_pixels.fc.")], {}),
}
