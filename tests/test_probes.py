"""Probes: attention maps and block outputs, captured in one forward call of the unwrapped model, equal
vit-pytorch's Recorder and Extractor (ViT), and the maps of windowed (MaxViT) and cross-attention
(CrossViT) blocks equal the reference's own softmax outputs."""
import pytest
import torch

import vitdsl
from vitdsl import VitdslError
from vitdsl.interop.vit_pytorch import import_weights


def pair(make_ref, blueprint, overrides=None):
    torch.manual_seed(0)
    ref = make_ref().eval()
    ours = vitdsl.build(blueprint, overrides=overrides).eval()
    import_weights(ours, ref)
    return ref, ours


def softmax_outputs(ref, name="attend"):
    """Every call's output of the reference's `attend` modules, in call order."""
    maps, hooks = [], []
    for path, m in ref.named_modules():
        if path.endswith(name):
            hooks.append(m.register_forward_hook(lambda _, __, out: maps.append(out.detach().clone())))
    return maps, hooks


def readme_vit():
    from vit_pytorch.vit import ViT

    return ViT(image_size=256, patch_size=32, num_classes=1000, dim=1024, depth=6, heads=16, mlp_dim=2048,
               dropout=0.1, emb_dropout=0.1)


def test_vit_attention_maps_equal_the_recorders():
    from vit_pytorch.recorder import Recorder

    ref, ours = pair(readme_vit, "vit")
    img = torch.randn(1, 3, 256, 256)
    with torch.no_grad():
        preds, attns = Recorder(ref)(img)
        logits, cap = vitdsl.probe(ours, img)
    assert attns.shape == (1, 6, 16, 65, 65)
    assert list(cap.attention) == [f"blocks.{i}.attn" for i in range(6)]
    assert torch.equal(cap.stacked(), attns)
    assert torch.equal(logits, preds)


def test_vit_embeddings_equal_the_extractors():
    from vit_pytorch.extractor import Extractor

    ref, ours = pair(readme_vit, "vit")
    img = torch.randn(1, 3, 256, 256)
    with torch.no_grad():
        logits_ref, embeddings = Extractor(ref)(img)  # the output of ref.transformer (its final norm included)
        with vitdsl.capture(ours, outputs="norm") as fused:  # attention on its fused kernel
            ours(img)
        with vitdsl.capture(ours, attention=True, outputs="norm") as explicit:  # the reference's own softmax path
            logits = ours(img)
    assert embeddings.shape == (1, 65, 1024)
    assert torch.equal(explicit.outputs["norm"], embeddings)
    assert torch.equal(logits, logits_ref)
    assert (fused.outputs["norm"] - embeddings).abs().max() < 1e-5


def test_attention_stays_fused_outside_a_capture():
    _, ours = pair(readme_vit, "vit")
    img = torch.randn(1, 3, 256, 256)
    seen = []
    with torch.no_grad():
        with vitdsl.capture(ours, attention="blocks.0.attn"):
            seen.append(ours.get_submodule("blocks.0.attn").explicit_mode() is not None)
            inside = ours(img)
        seen.append(ours.get_submodule("blocks.0.attn").explicit_mode() is not None)
        outside = ours(img)
    assert seen == [True, False]
    assert torch.allclose(inside, outside, atol=1e-5, rtol=0)


def small_maxvit():
    from vit_pytorch.max_vit import MaxViT

    return MaxViT(num_classes=5, dim_conv_stem=16, dim=16, dim_head=8, depth=(1, 1), window_size=4, dropout=0.0)


def test_maxvit_window_and_grid_maps_equal_the_references():
    ref, ours = pair(small_maxvit, "maxvit", {"stem": 16, "dims": [16, 32], "dim_head": 8, "depths": [1, 1],
                                              "window": 4, "classes": 5, "dropout": 0.0, "image_size": 64})
    img = torch.randn(2, 3, 64, 64)
    maps, hooks = softmax_outputs(ref)
    with torch.no_grad():
        ref(img)
        _, cap = vitdsl.probe(ours, img, attention="stages.*")
    for h in hooks:
        h.remove()
    assert len(cap.attention) == len(maps) == 4  # window then grid attention, in each of two stages
    for (path, ours_map), theirs in zip(cap.attention.items(), maps):
        # 16×16 in stage 0 (stem and first MBConv halve 64 twice): 4×4 windows of 4×4; then 8×8: 2×2 windows
        assert ours_map.shape[0] == 2 and ours_map.shape[-2:] == (16, 16)
        assert torch.allclose(ours_map.reshape(theirs.shape), theirs, atol=1e-6, rtol=0), path
    assert cap.attention["stages.0.blocks.0.block_attn"].shape == (2, 16, 2, 16, 16)
    assert cap.attention["stages.1.blocks.0.grid_attn"].shape == (2, 4, 4, 16, 16)  # 32 channels: 4 heads of 8


def small_cross_vit():
    from vit_pytorch.cross_vit import CrossViT

    return CrossViT(image_size=32, num_classes=5, depth=2, sm_dim=16, sm_patch_size=8, sm_enc_depth=1,
                    sm_enc_heads=2, sm_enc_mlp_dim=32, lg_dim=24, lg_patch_size=16, lg_enc_depth=2,
                    lg_enc_heads=2, lg_enc_mlp_dim=32, cross_attn_depth=1, cross_attn_heads=2, dropout=0.0,
                    emb_dropout=0.0)


CROSS = dict(image_size=32, classes=5, depth=2, dims=[16, 24], patches=[8, 16], depths=[1, 2], heads=[2, 2],
             mlps=[32, 32], cross_depth=1, cross_heads=2, dropout=0.0, emb_dropout=0.0)
SM, LG = (f"encoder.{{}}.cross.0.branches.{s}.cross_attn" for s in ("sm", "lg"))


def test_cross_vit_self_and_cross_attention_maps_and_both_scales():
    from vit_pytorch.extractor import Extractor

    ref, ours = pair(small_cross_vit, "cross_vit", CROSS)
    img = torch.randn(2, 3, 32, 32)
    maps, hooks = softmax_outputs(ref)
    with torch.no_grad():
        _, (sm, lg) = Extractor(ref, layer_name="multi_scale_encoder")(img)
        with vitdsl.capture(ours, attention=True, outputs=[SM.format(1), LG.format(1)]) as cap:
            ours(img)
    for h in hooks:
        h.remove()
    assert len(cap.attention) == len(maps) == 2 * (1 + 2 + 2)
    for (path, ours_map), theirs in zip(cap.attention.items(), maps):
        assert ours_map.shape == theirs.shape, path
        assert torch.allclose(ours_map, theirs, atol=1e-6, rtol=0), path
    # the small-scale class token attends to itself and the 4 large-scale patches
    assert cap.attention[SM.format(0)].shape == (2, 2, 1, 5)
    assert torch.allclose(cap.outputs[SM.format(1)], sm, atol=1e-6, rtol=0)
    assert torch.allclose(cap.outputs[LG.format(1)], lg, atol=1e-6, rtol=0)


def test_unknown_paths_are_refused_with_the_choices():
    model = vitdsl.build("vit", overrides=dict(image_size=32, patch=8, dim=32, depth=2, heads=2, mlp=64))
    with pytest.raises(VitdslError) as e:
        with vitdsl.capture(model, attention="blocks.0.atn"):
            pass
    assert e.value.message == "'blocks.0.atn' names no attention block of 'vit'"
    assert e.value.hint.startswith("did you mean 'blocks.0.attn'?")
    with pytest.raises(VitdslError, match="'blocks.0.ff' names no attention block of 'vit'"):
        vitdsl.probe(model, torch.randn(1, 3, 32, 32), attention="blocks.0.ff")
    with pytest.raises(VitdslError, match="'nrom' names no block of 'vit'"):
        vitdsl.probe(model, torch.randn(1, 3, 32, 32), outputs=["nrom"])
    with pytest.raises(VitdslError, match="probes take a model built from a blueprint, not a Linear"):
        vitdsl.probe(torch.nn.Linear(2, 2), torch.randn(1, 2))


def test_a_block_that_attends_twice_gives_both_maps():
    overrides = {"image_size": 64, "window": 2, "dims": [16, 32, 48, 64], "depths": [1, 1, 1, 1],
                 "heads": [2, 2, 2, 2], "dim_head": 8, "classes": 5}
    model = vitdsl.build("regionvit", overrides=overrides).eval()
    _, cap = vitdsl.probe(model, torch.randn(1, 3, 64, 64), attention="stages.0.*")
    keys = list(cap.attention)
    assert len(keys) == 2 and keys[1] == keys[0] + "@1"
