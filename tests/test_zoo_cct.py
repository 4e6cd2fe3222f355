"""CCT's options: conv-stem max-pool and kaiming init, patchify without a projection, pos-embed
sincos1d / none, pool: seq, the drop-path schedule, and the cct_N variants against vit-pytorch."""
import pytest
import torch
from torch import nn
from vit_pytorch import cct as ref

import vitdsl
from vitdsl import VitdslError
from vitdsl.blocks.conv import ConvStem
from vitdsl.blocks.embed import Patchify, PosEmbed
from vitdsl.blocks.heads import Pool
from vitdsl.blocks.shape import Shape
from vitdsl.errors import ShapeError

SMALL = {"image_height": 32, "image_width": 48, "classes": 10}

STEM = """\
name: t
input: {image: [3, 8, 8]}
layers:
  - conv-stem: {channels: [4], kernel: 1, %s}
  - pool: mean
"""


def stem_error(fields):
    with pytest.raises(VitdslError) as e:
        vitdsl.validate(vitdsl.loads(STEM % fields))
    return e.value


def test_max_pool_follows_each_convolution():
    spec = ConvStem(channels=[4, 6], kernel=7, stride=2, padding=3, bias=False, act="relu", pool=3,
                    pool_stride=2, pool_padding=1)
    x = Shape.image(3, 224, 448)
    assert spec.infer(x).dims == (6, 14, 28)  # CCT's README tokenizer: two conv + pool halvings each
    model = spec.build(x)
    expected = nn.Sequential(*[nn.Sequential(layer.conv, nn.ReLU(), nn.MaxPool2d(3, 2, 1)) for layer in model])
    img = torch.randn(1, 3, 40, 24)
    assert torch.equal(model(img), expected(img))
    assert ConvStem(channels=[4], kernel=1, pool=2).infer(Shape.image(3, 8, 6)).dims == (4, 4, 3)  # stride = kernel


def test_max_pool_errors():
    assert stem_error("pool_padding: 1").message == \
        "conv-stem: pool_stride and pool_padding need a pool kernel: set pool"
    assert stem_error("pool: 3, pool_padding: 2").message == \
        "conv-stem: pool_padding 2 is more than half the pool kernel 3 (max-pool would pad with -inf only windows)"
    with pytest.raises(ShapeError, match=r"max-pool 0 \(kernel 3\) gets a 2×2 map, too small"):
        ConvStem(channels=[4], kernel=1, pool=3).infer(Shape.image(3, 2, 2))


def test_kaiming_init_is_kaiming_normal():
    x = Shape.image(16, 8, 8)
    fan_in = 16 * 7 * 7
    default = ConvStem(channels=[256], kernel=7).build(x)[0].conv.weight
    kaiming = ConvStem(channels=[256], kernel=7, init="kaiming").build(x)[0].conv.weight
    assert kaiming.std().item() == pytest.approx((2 / fan_in) ** 0.5, rel=0.05)
    assert default.std().item() == pytest.approx((1 / (3 * fan_in)) ** 0.5, rel=0.05)


def test_patchify_without_dim_only_flattens():
    spec = Patchify(patch=1)
    x = Shape.image(5, 3, 4)
    out = spec.infer(x)
    assert (out.dims, out.grid, spec.count_params(x), spec.flops(x)) == ((12, 5), (3, 4), 0, 0)
    img = torch.randn(2, 5, 3, 4)
    assert torch.equal(spec.build(x)(img), img.flatten(2).transpose(1, 2))
    with pytest.raises(ValueError, match="post_norm needs a projection: set dim, or drop post_norm"):
        Patchify(patch=1, post_norm="layer")  # a norm of the raw vector is pre_norm
    assert not list(spec.build(x).state_dict())


def test_sincos1d_is_cct_sine_table_as_frozen_parameter_or_buffer():
    x = Shape.tokens(10, 8)
    frozen, buffered = PosEmbed(kind="sincos1d"), PosEmbed(kind="sincos1d", store="buffer")
    assert (frozen.count_params(x), buffered.count_params(x)) == (80, 0)
    m = frozen.build(x)
    assert [n for n, p in m.named_parameters()] == ["pos"] and not m.pos.requires_grad
    assert torch.equal(m.pos, ref.sinusoidal_embedding(10, 8)[0])
    b = buffered.build(x)
    assert not list(b.parameters()) and list(b.state_dict()) == ["pos"]
    t = torch.randn(2, 10, 8)
    assert torch.equal(m(t), b(t)) and torch.equal(m(t), t + m.pos)


def test_pos_none_keeps_only_the_dropout():
    x = Shape.tokens(10, 8)
    spec = PosEmbed(kind="none", dropout=0.5)
    m = spec.build(x)
    t = torch.randn(2, 10, 8)
    assert spec.count_params(x) == 0 and not list(m.state_dict())
    assert torch.equal(m.eval()(t), t)
    assert not torch.equal(m.train()(t), t)


def test_a_typo_in_the_positions_lists_the_kinds():
    with pytest.raises(VitdslError) as e:
        vitdsl.validate("cct", overrides={"pos": "sine"})
    assert e.value.path == "pos_embed"
    assert e.value.message == ("field 'kind' of 'pos-embed': Input should be 'learned', 'sincos2d', 'sincos1d', "
                               "'factorized', 'none', 'scalar', 'sincos3d' or 'fourier' (got 'sine')")


def test_seq_pool_is_a_softmax_weighted_sum():
    x = Shape.tokens(6, 4)
    spec = Pool(mode="seq")
    assert spec.infer(x).dims == (4,) and spec.count_params(x) == 5
    m = spec.build(x)
    t = torch.randn(3, 6, 4)
    w = (t @ m.score.weight[0] + m.score.bias).softmax(dim=1)
    assert torch.allclose(m(t), (w[..., None] * t).sum(1), atol=1e-6)
    on_map = spec.build(Shape.image(4, 2, 3))
    on_map.load_state_dict(m.state_dict())
    assert torch.allclose(on_map(t.transpose(1, 2).reshape(3, 4, 2, 3)), m(t), atol=1e-6)


def test_drop_path_rises_linearly_like_cct():
    model = vitdsl.build("cct", "cct_2", {**SMALL, "depth": 5})
    reference = ref.CCT(img_size=(32, 48), num_classes=10, embedding_dim=128, num_layers=5, num_heads=2,
                        mlp_ratio=1, kernel_size=3, stride=1, padding=1)
    for i, block in enumerate(reference.classifier.blocks):
        for ours in (model.block(f"blocks.{i}.attn"), model.block(f"blocks.{i}.ff")):
            p = ours.drop_path.p if ours.drop_path is not None else 0.0
            assert p == pytest.approx(block.drop_path.drop_prob, abs=1e-7)


# read from vit_pytorch.cct.cct_N() with no arguments (224×224, 12,544 tokens)
DEFAULT_PARAMS = {"cct_2": 1_936_873, "cct_4": 2_135_273, "cct_6": 6_633_961, "cct_7": 7_160_297,
                  "cct_8": 7_686_633, "cct_14": 25_905_641, "cct_16": 28_861_673}


@pytest.mark.parametrize("variant", ref.__all__)
def test_variants_are_the_cct_functions(variant):
    assert vitdsl.summary("cct", variant).total_params == DEFAULT_PARAMS[variant]
    reference = getattr(ref, variant)(img_size=(32, 48), num_classes=10)
    assert vitdsl.summary("cct", variant, SMALL).total_params == sum(p.numel() for p in reference.parameters())


def test_cct_exports_without_graph_breaks():
    model = vitdsl.build("cct", "cct_2", SMALL).eval()
    x = torch.randn(2, *model.input_shape)
    assert torch._dynamo.explain(model)(x).graph_break_count == 0
    program = torch.export.export(model, (x,))
    with torch.no_grad():
        assert torch.allclose(program.module()(x), model(x), atol=1e-6)
