"""SimMIM and MPP around a ViT: the encoder's layers under ``encoder.``, what the reference holds but never
runs left out (SimMIM: the class token and the classifier head; MPP: the classifier head)."""
from .common import UNUSED, under
from .mae import PATCH_TO_EMB, VIT_ENCODER
from .vit import MAPS as VIT

# MPP wraps the encoder's patch embedding slice (keys 1-3 kept) in a second Sequential: the same tensors again
MPP_PATCH_TO_EMB = [(r"patch_to_emb\.0\.1\.", "encoder.patchify.pre_norm."),
                    (r"patch_to_emb\.0\.2\.", "encoder.patchify.proj."),
                    (r"patch_to_emb\.0\.3\.", "encoder.patchify.post_norm.")]

MAPS = {
    "vit_pytorch.simmim.SimMIM": (
        [*under(VIT_ENCODER, r"encoder\.", "encoder."), *PATCH_TO_EMB, (r"mask_token$", "mask_token"),
         (r"to_pixels\.", "to_pixels.head.fc.")], {}),
    "vit_pytorch.mpp.MPP": (
        [*under([(r"mlp_head\.", UNUSED), *VIT["vit_pytorch.vit.ViT"][0]], r"transformer\.", "encoder."),
         *MPP_PATCH_TO_EMB, (r"mask_token$", "mask_token"), (r"to_bits\.", "to_bits.head.fc.")], {}),
}
