"""NaViT: packed variable-size images. A small configuration, held against vit-pytorch's NaViT."""
import pytest
import torch
from vit_pytorch.na_vit import NaViT, group_images_by_max_seq_len

import vitdsl
from vitdsl.blocks.modules.packed import group_images
from vitdsl.errors import ShapeError
from vitdsl.interop.vit_pytorch import import_weights

SMALL = {"image_size": 64, "patch": 16, "dim": 64, "depth": 2, "heads": 4, "dim_head": 16, "mlp": 128,
         "classes": 10}


def pair(token_dropout=0.1, dropout=0.1, **extra):
    torch.manual_seed(0)
    ref = NaViT(image_size=64, patch_size=16, num_classes=10, dim=64, depth=2, heads=4, dim_head=16, mlp_dim=128,
                dropout=dropout, emb_dropout=dropout, token_dropout_prob=token_dropout)
    ours = vitdsl.build("navit", overrides={**SMALL, "token_dropout": token_dropout, "dropout": dropout,
                                            "emb_dropout": dropout, **extra})
    import_weights(ours, ref)
    return ref.eval(), ours.eval()


def images(*sizes):
    return [torch.randn(3, h, w) for h, w in sizes]


def close(a, b):
    return a.shape == b.shape and (a - b).abs().max().item() <= 1e-5


def test_each_image_gives_what_it_gives_alone():
    _, model = pair()
    a, b, c = images((64, 32), (16, 48), (32, 32))
    with torch.no_grad():
        packed = model([[a, b], [c]])
        alone = torch.cat([model([[a]]), model([[b]]), model([[c]])])
        batch = model(torch.stack([c, c]))
    assert packed.shape == (3, 10)
    assert close(packed, alone)
    assert close(batch, alone[2:].expand(2, -1))


def test_flat_lists_and_grouping_match_the_reference():
    ref, model = pair(max_seq_len=20)
    flat = images((64, 64), (32, 32), (32, 64), (64, 32), (16, 64))
    with torch.no_grad():
        assert close(model(flat), ref(flat, group_images=True, group_max_seq_len=20))
    _, ungrouped = pair()
    import_weights(ungrouped, ref)
    with torch.no_grad():
        assert close(ungrouped(flat), ref(flat))
    ours = group_images(flat, 16, 20)
    theirs = group_images_by_max_seq_len(flat, patch_size=16, max_seq_len=20)
    assert [[id(i) for i in g] for g in ours] == [[id(i) for i in g] for g in theirs]
    assert [len(g) for g in ours] == [2, 3]  # 16+4 and 8+8+4 tokens


def test_token_dropout_in_training_draws_as_the_reference_does():
    ref, model = pair(token_dropout=0.5, dropout=0.0)
    batch = [images((64, 64), (32, 48)), images((16, 16))]
    ref.train()
    model.train()
    torch.manual_seed(1)
    expected = ref(batch)
    torch.manual_seed(1)
    got = model(batch)
    assert close(got, expected)
    with torch.no_grad():
        assert not close(model.eval()(batch), got)  # tokens were dropped


def test_the_packing_rides_along_token_wise_blocks_only():
    _, model = pair()
    with torch.no_grad():
        x, packing = model.patchify([images((32, 64), (16, 16))])
    assert x.shape == (1, 9, 64) and packing.valid.all() and packing.ids.tolist() == [[0] * 8 + [1]]
    assert packing.counts == (2,) and not packing.single and packing.attn_mask.shape == (1, 1, 9, 9)
    flow = {p: (s.gives, s.reads, s.passes) for p, s in zip(model.paths, model.steps)}  # the compiled plan
    assert flow["patchify"] == (True, False, False)
    assert flow["pos_embed"] == flow["blocks.0.attn"] == (False, True, True)
    assert flow["pool"] == (False, True, False)
    assert flow["blocks.0.ff"] == flow["norm"] == (False, False, True)
    assert flow["head"] == (False, False, False)
    assert [p for p in model.paths if not model._carries[p]] == ["pool", "head"]


def test_summary_traces_one_image_of_the_maximum_size():
    s = vitdsl.summary("navit", overrides=SMALL)
    assert (s.input_kind, s.input, s.output) == ("images", (3, 64, 64), (10,))
    rows = {r.path: r for r in s.rows}
    assert rows["patchify"].output == (16, 64) and rows["pool"].output == (64,)
    assert rows["blocks.0.attn"].pattern == "per image, qk-norm"
    assert s.total_flops == vitdsl.graph.info(vitdsl.validate("navit", overrides=SMALL))["flops"]


def test_attention_blocks_on_plain_tokens():
    bp = vitdsl.loads("""
name: pooled
input: {image: [3, 32, 32]}
layers:
  - patchify: {patch: 8, dim: 32}
  - pos-embed: factorized
  - global-attn: {heads: 2, qk_norm: true, scale: 1.0}
  - attn-pool: {heads: 2}
  - head: 5
""")
    model = vitdsl.build(bp).eval()
    with torch.no_grad():
        assert model(torch.randn(3, 3, 32, 32)).shape == (3, 5)
    assert vitdsl.validate(bp).shape("global_attn").kind == "tokens"


# -- errors ------------------------------------------------------------------------------------------
def error(text):
    with pytest.raises(ShapeError) as e:
        vitdsl.validate(vitdsl.loads(text))
    return e.value


BASE = """
name: e
input: {images: [3, SIZE, SIZE]}
layers:
  - patchify: {patch: 32, dim: 64}
    name: patchify
"""


def test_maximum_size_must_fit_the_patch():
    e = error(BASE.replace("SIZE", "250") + "  - attn-pool: {heads: 2}\n")
    assert e.message.startswith("maximum image height 250 is not divisible by the patch height 32")
    assert "square input sizes that work (up to 1024): multiples of 32" in e.hint


@pytest.mark.parametrize("block,fix", [("pool: mean", "attn-pool"), ("cross-attn: {heads: 2}", "global-attn")])
def test_packed_tokens_only_reach_blocks_that_keep_images_apart(block, fix):
    e = error(BASE.replace("SIZE", "64") + f"  - {block}\n")
    assert "but 'patchify' (patchify) gives packed 4×64" in e.message
    assert fix in e.hint


def test_packed_attention_refuses_options_it_cannot_keep_per_image():
    e = error(BASE.replace("SIZE", "64") + "  - global-attn: {heads: 2, over: groups}\n")
    assert e.message == ("on packed tokens global-attn attends within each image, not over: groups "
                         "(input here: packed 4×64)")
    assert e.hint == "attend over unpacked tokens"


@pytest.mark.parametrize("block", ["memory-attn: {heads: 2}", "sampling-attn: {heads: 2, samples: 2}",
                                   "channel-attn: {heads: 2}", "reduced-attn: {heads: 2}"])
def test_global_attention_of_one_paper_takes_no_packed_tokens(block):
    e = error(BASE.replace("SIZE", "64") + f"  - {block}\n")
    assert "but 'patchify' (patchify) gives packed 4×64" in e.message


def test_packed_tokens_take_only_factorized_positions():
    e = error(BASE.replace("SIZE", "64") + "  - pos-embed: learned\n")
    assert e.message.startswith("packed tokens hold several images, so a learned position table would mix them up")
    assert e.hint.startswith("use kind: factorized")


def test_images_must_be_packed_first():
    e = error(BASE.replace("SIZE", "64").replace("patchify: {patch: 32, dim: 64}", "conv-stem: {channels: [8]}"))
    assert e.message == "'conv-stem' takes image or volume, but the input gives images 3×64×64"
    assert e.hint == "images of varying sizes must be packed first: '- patchify: {patch: ..., dim: ...}'"


@pytest.mark.parametrize("fields,message", [
    ("{patch: 32}", "patchify packs images of varying sizes with non-overlapping patches and a projection: it takes "
                    "dim, and no stride, padding, shift or layout: map"),
    ("{patch: 32, dim: 64, stride: 16}", "patchify packs images of varying sizes"),
])
def test_packing_patchify_needs_a_projection_and_plain_patches(fields, message):
    e = error(BASE.replace("SIZE", "64").replace("{patch: 32, dim: 64}", fields))
    assert e.message.startswith(message)


def test_packing_options_need_images():
    e = error(BASE.replace("SIZE", "64").replace("images:", "image:")
              .replace("dim: 64}", "dim: 64, token_dropout: 0.1}"))
    assert e.message == ("token_dropout and max_seq_len are for packing images of varying sizes, but the input here "
                         "is image (input here: image 3×64×64)")


def test_factorized_positions_cover_patches_only():
    e = error("""
name: e
input: {image: [3, 32, 32]}
layers:
  - patchify: {patch: 8, dim: 32}
  - tokens: {cls: 1}
  - pos-embed: factorized
  - pool: cls
""")
    assert "factorized positions cover patch tokens only, but 1 special token(s) lead the sequence" in e.message


@pytest.mark.parametrize("batch,message", [
    ([[torch.randn(3, 96, 64)]], "image 96×64 is larger than the blueprint's maximum 64×64"),
    ([[torch.randn(3, 40, 64)]], "image 40×64 is not divisible by the patch 16×16"),
    ([[torch.randn(1, 32, 32)]], "expected an image (C, H, W) with C = 3, got (1, 32, 32)"),
    (torch.randn(2, 3, 64, 48, 1), "expected a batch (B, C, H, W) with C = 3, got (2, 3, 64, 48, 1)"),
    ([[torch.randn(3, 32, 32)], []], "a sample holds no images"),
    ([], "expected images as a (B, C, H, W) tensor or a non-empty list, got list"),
])
def test_runtime_inputs_are_checked(batch, message):
    model = vitdsl.build("navit", overrides=SMALL).eval()
    with pytest.raises(ShapeError) as e:
        model(batch)
    assert e.value.message == message


def test_grouping_refuses_an_image_longer_than_the_limit():
    model = vitdsl.build("navit", overrides={**SMALL, "max_seq_len": 8}).eval()
    with pytest.raises(ShapeError, match="an image of 64×64 has 16 tokens, more than max_seq_len 8"):
        model(images((64, 64), (16, 16)))


def test_dropped_zero_buffers_must_be_zero():
    ref, model = pair()
    ref.transformer.norm.beta.fill_(0.5)
    with pytest.raises(vitdsl.VitdslError, match="'transformer.norm.beta' is dropped as a constant zero, but it is "
                                                 "not zero"):
        import_weights(model, ref)
