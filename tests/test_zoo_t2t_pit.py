"""T2T-ViT and PiT: overlapping patchify (stride, padding, no projection, on a token grid), the
downsample block, `repeat: 0`, the paper variants and non-square inputs."""
import pytest
import torch
import torch.nn.functional as F

import vitdsl
from vitdsl import VitdslError, validate
from vitdsl.blocks.downsample import Downsample
from vitdsl.blocks.embed import Patchify
from vitdsl.blocks.shape import Shape


def blueprint(layers: str, input: str = "image: [3, 32, 32]", params: str = "{}") -> str:
    return f"name: t\ninput: {{{input}}}\nparams: {params}\nlayers:\n{layers}"


def fails(path, **kw) -> VitdslError:
    with pytest.raises(VitdslError) as e:
        validate(str(path), **kw)
    return e.value


# -- patchify: the nn.Unfold shape rule -------------------------------------------------------------
@pytest.mark.parametrize("size,patch,stride,padding", [
    ((224, 224), 7, 4, 2), ((56, 56), 3, 2, 1), ((28, 28), 3, 2, 1),  # T2T's soft splits: 56, 28, 14
    ((224, 224), 14, 7, 0),  # PiT: 31
    ((13, 13), 4, 3, 1), ((9, 12), (3, 5), (2, 3), (1, 0)), ((5, 6), 5, 4, 0)])
def test_unfold_rule_agrees_with_nn_unfold(size, patch, stride, padding):
    spec = Patchify(patch=patch, stride=stride, padding=padding, order="chw")
    x = torch.randn(1, 2, *size)
    want = F.unfold(x, patch, stride=stride, padding=padding).transpose(1, 2)
    out = spec.infer(Shape.image(2, *size))
    assert out.dims == tuple(want.shape[1:])
    gh, gw = out.grid
    assert gh * gw == want.shape[1]
    assert torch.equal(spec.build(Shape.image(2, *size))(x), want)  # no projection: the raw vectors


def test_grid_sides_follow_the_floor_rule():
    spec = Patchify(patch=7, stride=4, padding=2, dim=8)
    assert spec.infer(Shape.image(3, 224, 100)).grid == ((224 - 7 + 4) // 4 + 1, (100 - 7 + 4) // 4 + 1) == (56, 25)


@pytest.mark.parametrize("order", ["hwc", "chw"])
def test_unfolding_with_stride_equal_to_patch_is_the_plain_cut(order):
    shape = Shape.image(3, 8, 12)
    plain = Patchify(patch=4, dim=6, order=order).build(shape)
    unfolded = Patchify(patch=4, dim=6, order=order, stride=4).build(shape)
    unfolded.load_state_dict(plain.state_dict())
    x = torch.randn(2, *shape.dims)
    with torch.no_grad():
        assert torch.equal(plain(x), unfolded(x))
    # with gradients the plain cut may run as a strided convolution (timm's patch embedding): other rounding
    assert torch.allclose(plain(x), unfolded(x), atol=1e-6, rtol=0)


def test_patchify_on_tokens_folds_them_along_their_grid():
    first = Patchify(patch=2, order="chw")  # 3×4×6 image -> 2×3 grid of 12-wide tokens
    second = Patchify(patch=2, stride=1, order="chw")
    tokens = first.infer(Shape.image(3, 4, 6))
    assert (tokens.dims, tokens.grid) == ((6, 12), (2, 3))
    out = second.infer(tokens)
    assert (out.dims, out.grid) == ((2, 48), (1, 2))
    x = torch.randn(2, 3, 4, 6)
    t = first.build(Shape.image(3, 4, 6))(x)
    as_map = t.transpose(1, 2).reshape(2, 12, 2, 3)  # row-major tokens -> (B, C, H, W), not a square guess
    assert torch.equal(second.build(tokens)(t), F.unfold(as_map, 2, stride=1).transpose(1, 2))


def test_a_patch_larger_than_the_padded_image_is_refused(write):
    path = write(blueprint("  - patchify: {patch: 9, stride: 4, padding: 1, dim: 16}\n  - pool: mean\n",
                           input="image: [3, 6, 8]"))
    e = fails(path)
    assert e.message == ("patch height 9 does not fit the image height 6 padded by 1 on each side "
                         "(6 + 2·1 = 8 < 9) (input here: image 3×6×8)")
    assert e.hint.startswith("use a patch height of at most 8, or more padding; square input sizes that work")
    assert str(e.location) == f"{path}:5:15"


def test_a_patch_wider_than_the_padded_image_is_refused(write):
    e = fails(write(blueprint("  - patchify: {patch: [3, 9], stride: 2}\n  - pool: mean\n",
                              input="image: [3, 16, 7]")))
    assert e.message == ("patch width 9 does not fit the image width 7 padded by 0 on each side "
                         "(7 + 2·0 = 7 < 9) (input here: image 3×16×7)")


def test_a_patch_larger_than_the_token_grid_is_refused(write):
    e = fails(write(blueprint("  - patchify: {patch: 7, stride: 4, padding: 2}\n"
                              "  - patchify: {patch: 7, stride: 2, padding: 1, dim: 16}\n  - pool: mean\n",
                              input="image: [3, 8, 8]")))
    assert e.path == "patchify_1"
    assert e.message == ("patch height 7 does not fit the token grid height 2 padded by 1 on each side "
                         "(2 + 2·1 = 4 < 7) (input here: tokens 4×147)")


def test_patchify_refuses_tokens_without_a_grid(write):
    e = fails(write(blueprint("  - patchify: {patch: 2, dim: 8}\n  - pool: mean\n", input="tokens: [16, 8]")))
    assert e.message == ("patchify on tokens needs tokens that carry a 2-D patch grid, to fold them back into "
                         "a map, but these carry none (input here: tokens 16×8)")
    assert e.hint == "patchify the image itself, or tokens that come from patchify"


def test_patchify_refuses_tokens_led_by_special_tokens(write):
    e = fails(write(blueprint("  - patchify: {patch: 4}\n  - tokens: {cls: 1}\n"
                              "  - patchify: {patch: 2, dim: 8}\n  - pool: mean\n", input="image: [3, 16, 16]")))
    assert e.message == ("patchify on tokens folds the patch grid back into a map, but 1 special token(s) lead "
                         "the sequence (input here: tokens 17×48)")
    assert e.hint == "put the tokens block after the last patchify"


def test_post_norm_needs_a_projection(write):
    e = fails(write(blueprint("  - patchify: {patch: 4, post_norm: layer}\n  - pool: mean\n")))
    assert e.message == "patchify: post_norm needs a projection: set dim, or drop post_norm"


def test_without_dim_there_is_no_projection_and_no_parameter():
    spec = Patchify(patch=3, stride=2, padding=1, pre_norm="layer")
    x = Shape.image(3, 10, 10)
    assert spec.infer(x).features == 27
    assert spec.count_params(x) == 2 * 27 and spec.flops(x) == 0
    assert [k for k in spec.build(x).state_dict()] == ["pre_norm.weight", "pre_norm.bias"]


# -- downsample ---------------------------------------------------------------------------------------
def test_downsample_shrinks_the_grid_and_keeps_the_prefix():
    spec = Downsample()
    x = Shape.tokens(1 + 5 * 7, 8, grid=(5, 7), prefix=1)
    out = spec.infer(x)
    assert (out.dims, out.grid, out.prefix) == ((1 + 3 * 4, 16), (3, 4), 1)
    # depthwise 3×3 (8 -> 16, groups 8) + 1×1 (16 -> 16) + cls Linear (8 -> 16)
    assert spec.count_params(x) == (16 * 9 + 16) + (16 * 16 + 16) + (8 * 16 + 16)


def test_downsample_on_tokens_is_the_map_convolution_in_row_major_order():
    tokens_shape = Shape.tokens(2 + 5 * 7, 8, grid=(5, 7), prefix=2)
    on_tokens = Downsample(dim=24).build(tokens_shape)
    on_map = Downsample(dim=24).build(Shape.image(8, 5, 7))
    on_map.load_state_dict({k: v for k, v in on_tokens.state_dict().items() if not k.startswith("prefix")})
    x = torch.randn(2, 2 + 35, 8)
    y = on_tokens(x)
    fmap = x[:, 2:].transpose(1, 2).reshape(2, 8, 5, 7)
    assert torch.equal(y[:, 2:], on_map(fmap).flatten(2).transpose(1, 2))
    assert torch.equal(y[:, :2], on_tokens.prefix(x[:, :2]))


def test_downsample_on_a_feature_map():
    spec = Downsample(dim=32, pointwise=False)
    assert spec.infer(Shape.image(16, 9, 9)).dims == (32, 5, 5)
    assert spec.count_params(Shape.image(16, 9, 9)) == 32 * 9 + 32


def test_depthwise_downsample_needs_a_multiple_of_the_width(write):
    e = fails(write(blueprint("  - patchify: {patch: 4, dim: 8}\n  - downsample: {dim: 12}\n  - pool: mean\n")))
    assert e.message == ("a depthwise downsample needs an output width that is a multiple of the input width 8, "
                         "got 12 (input here: tokens 64×8)")
    assert e.hint == "set dim to a multiple, or depthwise: false"
    plain = blueprint("  - patchify: {patch: 4, dim: 8}\n  - downsample: {dim: 12, depthwise: false}\n"
                      "  - pool: mean\n")
    assert validate(write(plain)).output.dims == (12,)


def test_downsample_refuses_tokens_without_a_grid(write):
    e = fails(write(blueprint("  - downsample: {}\n  - pool: mean\n", input="tokens: [16, 8]")))
    assert e.message == "downsample needs tokens that carry a 2-D patch grid, but these carry none " \
                        "(input here: tokens 16×8)"


# -- repeat: 0 ----------------------------------------------------------------------------------------
SMALL_PIT = {"image_size": 64, "patch": 8, "dim": 16, "dim_head": 8, "classes": 10}


def test_pit_pools_between_stages_only():
    graph = validate("pit", overrides={**SMALL_PIT, "depths": [1, 1, 1, 1], "heads": [1, 2, 4, 8],
                                       "mlp": [32, 64, 128, 256]})
    pools = [p for p in graph.order if p.endswith("downsample")]
    assert pools == ["stages.0.pool.0.downsample", "stages.1.pool.0.downsample", "stages.2.pool.0.downsample"]
    assert graph.shape("stages.2.pool.0.downsample").grid == (2, 2)  # 15 -> 8 -> 4 -> 2
    assert graph.output.dims == (10,)


def test_a_network_of_empty_repeats_is_refused(write):
    e = fails(write(blueprint("  - repeat: $n\n    layers:\n      - mlp: {}\n", params="{n: 0}")))
    assert e.message == "the blueprint has no blocks: every repeat around them is 0"


def test_output_naming_an_empty_repeat_is_refused(write):
    text = blueprint("  - repeat: 0\n    name: extra\n    layers:\n      - mlp: {}\n"
                     "  - patchify: {patch: 8, dim: 16}\n  - pool: mean\n") + "output: [extra, pool]\n"
    e = fails(write(text))
    assert e.message == "output names 'extra', which has no blocks (repeat 0)"


# -- variants and non-square inputs ---------------------------------------------------------------------
@pytest.mark.parametrize("variant", ["ti", "xs", "s", "b"])
def test_pit_variants_are_the_papers_sizes(variant):
    """timm's PiT (the paper's code), exactly: its positions cover the patch map, not the cls token."""
    timm = pytest.importorskip("timm")
    with torch.device("meta"):
        ref = timm.create_model(f"pit_{variant}_224")
    ours = vitdsl.summary("pit", variant).total_params
    assert ours == sum(p.numel() for p in ref.parameters())


@pytest.mark.parametrize("name,params,grids", [
    ("t2t_vit", "{dim: 32, depth: 1, heads: 2, dim_head: 16, mlp: 32, classes: 10}",
     {"t2t.0.split": (16, 24), "t2t.1.split": (8, 12), "t2t.2.split": (4, 6)}),
    ("pit", "{patch: 16, dim: 16, depths: [1, 1, 1], heads: [1, 2, 4], dim_head: 8, mlp: [16, 32, 64], classes: 10}",
     {"patchify": (7, 11), "stages.0.pool.0.downsample": (4, 6), "stages.1.pool.0.downsample": (2, 3)}),
])
def test_non_square_images_work(write, name, params, grids):
    """vit-pytorch's T2T and PiT assume square token grids (sqrt of the count); the blocks use the recorded grid."""
    path = write(f"extends: {name}\nname: wide\ninput: {{image: [3, 64, 96]}}\nparams: {params}\n")
    graph = validate(str(path))
    assert {p: graph.shape(p).grid for p in grids} == grids
    model = vitdsl.build(str(path)).eval()
    with torch.no_grad():
        assert model(torch.randn(2, 3, 64, 96)).shape == (2, 10)
