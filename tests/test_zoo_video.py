"""Video: tubelet patchify, sincos3d, 3-D conv-stem, and groups (frames folded into the batch) — made by
patchify / conv-stem with frames: groups, attended across with global-attn over: groups, undone by
ungroup — with their errors, the summary and FLOP count of grouped models, and a MaxViT-style image
encoder run frame by frame."""
import einops
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode
from vit_pytorch import cct_3d
from vit_pytorch.simple_vit_3d import SimpleViT as SimpleViT3d
from vit_pytorch.simple_vit_3d import posemb_sincos_3d
from vit_pytorch.vit_3d import ViT as ViT3d
from vit_pytorch.vivit import ViViT

import vitdsl
from vitdsl import VitdslError
from vitdsl.blocks.attention import GlobalAttn
from vitdsl.blocks.conv import ConvStem
from vitdsl.blocks.embed import Patchify, PosEmbed
from vitdsl.blocks.groups import Ungroup
from vitdsl.blocks.modules.attention import explicit_attention
from vitdsl.blocks.shape import Shape
from vitdsl.graph.build import info

VIDEO = Shape("volume", (3, 4, 8, 12))


def fails(text: str) -> VitdslError:
    with pytest.raises(VitdslError) as e:
        vitdsl.validate(vitdsl.loads(text))
    return e.value


def said(e: VitdslError) -> str:
    return f"{e.path}: {e.message}"


# -- tubelets ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("order,pattern", [("hwc", "(pf p1 p2 c)"), ("chw", "(c pf p1 p2)")])
def test_tubelets_are_vit_pytorchs_rearrange(order, pattern):
    x = torch.randn(2, *VIDEO.dims)
    flat = Patchify(patch=[2, 3], frame_patch=2, order=order)
    assert flat.infer(VIDEO) == Shape.tokens(32, 36, grid=(2, 4, 4))
    want = einops.rearrange(x, f"b c (f pf) (h p1) (w p2) -> b (f h w) {pattern}", pf=2, p1=2, p2=3)
    assert torch.equal(flat.build(VIDEO)(x), want)
    grouped = Patchify(patch=[2, 3], frame_patch=2, order=order, frames="groups")
    assert grouped.infer(VIDEO) == Shape.tokens(16, 36, grid=(4, 4), groups=2)
    assert torch.equal(grouped.build(VIDEO)(x), einops.rearrange(want, "b (f n) d -> (b f) n d", f=2))
    projected = Patchify(patch=2, frame_patch=2, dim=5)
    assert projected.count_params(VIDEO) == 24 * 5 + 5 and projected.flops(VIDEO) == 2 * 48 * 24 * 5


def test_frames_that_do_not_divide_are_refused_with_the_frame_patches_that_fit():
    e = fails("""\
name: t
input: {volume: [3, 15, 32, 32]}
layers:
  - patchify: {patch: 16, frame_patch: 2, dim: 8}
  - pool: mean
""")
    assert said(e) == "patchify: 15 frames are not divisible by the frame patch 2 (input here: volume 3×15×32×32)"
    assert e.hint == "frame patches that fit 15 frames: 1, 3, 5, 15"


def test_frame_options_need_a_volume_and_volumes_no_overlap():
    with pytest.raises(VitdslError, match="frame_patch and frames cut volumes, but the input is image"):
        Patchify(patch=4, frame_patch=2).infer(Shape.image(3, 8, 8))
    with pytest.raises(VitdslError, match="stride, padding and shift cut images, not volumes"):
        Patchify(patch=4, stride=2).infer(VIDEO)


# -- sincos3d -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("dim", [24, 32])  # 32: not a multiple of 6, so zero-padded
def test_sincos3d_is_simple_vit_3ds_table(dim):
    x = Shape.tokens(2 * 3 * 4, dim, grid=(2, 3, 4))
    spec = PosEmbed(kind="sincos3d")
    m = spec.build(x)
    assert spec.count_params(x) == 0 and not list(m.state_dict())
    assert torch.equal(m.pos, posemb_sincos_3d(torch.zeros(1, 2, 3, 4, dim)))


def test_sincos3d_needs_a_tubelet_grid_and_width():
    with pytest.raises(VitdslError, match=r"sincos3d positions need tokens that come from a volume's tubelets"):
        PosEmbed(kind="sincos3d").infer(Shape.tokens(16, 24, grid=(4, 4)))
    with pytest.raises(VitdslError, match="sincos3d needs a token width of at least 12"):
        PosEmbed(kind="sincos3d").infer(Shape.tokens(8, 6, grid=(2, 2, 2)))


# -- conv-stem on volumes -----------------------------------------------------------------------------
def test_conv_stem_on_a_volume_is_3d_or_per_frame():
    three_d = ConvStem(channels=[4], kernel=3, stride=2, frame_kernel=3, pool=3, pool_stride=2, pool_padding=1)
    assert three_d.infer(VIDEO) == Shape("volume", (4, 4, 2, 3))
    assert three_d.count_params(VIDEO) == 4 * 3 * 27 + 4
    conv = three_d.build(VIDEO)[0]
    assert isinstance(conv.conv, torch.nn.Conv3d) and conv.pool.kernel_size == (1, 3, 3)
    per_frame = ConvStem(channels=[4], kernel=3, stride=2, frames="groups")
    assert per_frame.infer(VIDEO) == Shape("image", (4, 4, 6), groups=4)
    m = per_frame.build(VIDEO)
    x = torch.randn(2, *VIDEO.dims)
    frames = torch.stack([m[0].conv(x[:, :, t]) for t in range(4)], 1)  # (b, t, c, h, w)
    assert torch.equal(m(x), frames.flatten(0, 1))
    assert per_frame.flops(VIDEO) == 4 * 2 * 4 * 3 * 9 * 4 * 6


def test_frame_options_of_conv_stem_are_checked():
    with pytest.raises(VitdslError, match="frames, frame_kernel, frame_stride and frame_padding are for volumes"):
        ConvStem(channels=[4], frame_kernel=3).infer(Shape.image(3, 8, 8))
    with pytest.raises(VitdslError, match="but frames: groups convolves each frame on its own"):
        ConvStem(channels=[4], frame_kernel=3, frames="groups").infer(VIDEO)
    with pytest.raises(VitdslError,
                       match=r"convolution 0 \(frame kernel 3, frame stride 1\) gets 2 frame\(s\), too few"):
        ConvStem(channels=[4], frame_kernel=3, frame_padding=0).infer(Shape("volume", (3, 2, 8, 8)))


# -- groups ---------------------------------------------------------------------------------------------
GROUPED = Shape.tokens(5, 16, grid=(2, 2), prefix=1, groups=3)


def test_attention_over_groups_attends_across_frames_at_each_position():
    spec = GlobalAttn(over="groups", heads=2, dim_head=8)
    m = spec.build(GROUPED).eval()
    plain = GlobalAttn(heads=2, dim_head=8).build(GROUPED).eval()
    plain.load_state_dict(m.state_dict())
    x = torch.randn(2 * 3, 5, 16)
    across = einops.rearrange(x, "(b g) n d -> (b n) g d", g=3)
    want = einops.rearrange(plain(across), "(b n) g d -> (b g) n d", n=5)
    assert torch.allclose(m(x), want, atol=1e-6)
    assert spec.pattern(GROUPED) == "across 3 groups"
    with FlopCounterMode(display=False) as counter, explicit_attention():
        m(torch.empty(GROUPED.batched(1)))
    assert counter.get_total_flops() == spec.total_flops(GROUPED)
    with pytest.raises(VitdslError, match="over: groups attends across groups, but these tokens hold none"):
        spec.infer(Shape.tokens(5, 16))


def test_ungroup_lays_the_groups_end_to_end():
    assert Ungroup().infer(Shape("vector", (16,), groups=3)) == Shape.tokens(3, 16, grid=(3,))
    assert Ungroup().infer(GROUPED) == Shape.tokens(15, 16, prefix=1)
    flat = Shape.tokens(4, 16, grid=(2, 2), groups=3)
    assert Ungroup().infer(flat) == Shape.tokens(12, 16, grid=(3, 2, 2))
    x = torch.randn(2 * 3, 5, 16)
    assert torch.equal(Ungroup().build(GROUPED)(x), einops.rearrange(x, "(b g) n d -> b (g n) d", g=3))


def test_per_group_positions_are_one_table_per_frame():
    spec = PosEmbed(per_group=True)
    assert spec.count_params(GROUPED) == 3 * 5 * 16
    m = spec.build(GROUPED)
    x = torch.randn(2 * 3, 5, 16)
    want = (x.view(2, 3, 5, 16) + m.pos).view(6, 5, 16)
    assert m.pos.shape == (3, 5, 16) and torch.equal(m(x), want)
    with pytest.raises(VitdslError, match="per_group gives each group its own table, but these tokens hold no groups"):
        spec.infer(Shape.tokens(5, 16))
    with pytest.raises(ValueError, match="per_group needs kind: learned, without unused_rows"):
        PosEmbed(kind="sincos2d", per_group=True)


HEAD = """\
name: t
input: {volume: [3, 4, 8, 8]}
layers:
  - patchify: {patch: 4, dim: 8, frames: groups}
    name: embed
"""


def test_ungroup_needs_groups():
    e = fails(HEAD.replace("frames: groups", "frames: tokens") + "  - pool: mean\n  - ungroup:\n")
    assert said(e) == ("ungroup: ungroup joins the groups of each sample, but this vector holds no groups "
                           "(input here: vector 8)")
    assert e.hint == "make groups first: patchify or conv-stem on a volume with frames: groups"


def test_the_output_may_not_hold_groups():
    e = fails(HEAD + "  - pool: mean\n")
    assert said(e) == "pool: the network's output holds 4 groups per sample (folded into the batch)"
    assert e.hint == "join them first: '- ungroup' makes one sequence of them"


def test_branches_with_different_groups_are_refused():
    e = fails(HEAD + """\
  - pool: mean
  - ungroup:
  - pool: mean
    name: clip
  - pool: mean
    from: embed
  - merge: add
    from: [embed_pooled, clip]
""".replace("    from: embed\n", "    name: embed_pooled\n    from: embed\n"))
    assert said(e) == ("merge: the inputs hold different numbers of groups (4, 1); 'merge' joins them item by "
                           "item (input here: vector 8 ×4 groups)")


# -- a MaxViT-style image encoder, frame by frame, then a temporal encoder --------------------------
ENCODER = """\
  - conv-stem: {channels: [8, 8], kernel: 3, stride: [2, 1]%s}
    name: stem
  - stages: {dim: [16, 32], depth: [1, 1]}
    layers:
      - repeat: $depth
        layers:
          - mbconv: {dim: $dim, stride: "${2 if index == 0 else 1}"}
          - local-attn: {partition: block, window: $window, dim_head: 8, out_bias: false}
            name: block_attn
          - mlp: {mult: 2}
            name: block_ff
          - local-attn: {partition: grid, window: $window, dim_head: 8, out_bias: false}
            name: grid_attn
          - mlp: {mult: 2}
            name: grid_ff
  - pool: mean
    name: frame
"""
FRAMES = "name: maxvit_frames\ninput: {volume: [3, 4, 32, 32]}\nparams: {window: 2}\nlayers:\n" + \
    ENCODER % ", frames: groups" + """\
  - ungroup:
  - tokens: {cls: 1}
  - pos-embed: learned
  - repeat: 1
    name: temporal
    layers:
      - global-attn: {heads: 2, dim_head: 8}
      - mlp: {mult: 2}
  - norm: layer
  - pool: cls
  - head: {classes: 5}
"""
IMAGE = "name: maxvit_image\ninput: {image: [3, 32, 32]}\nparams: {window: 2}\nlayers:\n" + ENCODER % ""


def test_an_image_encoder_runs_frame_by_frame():
    torch.manual_seed(0)
    video = vitdsl.build(vitdsl.loads(FRAMES)).eval()
    image = vitdsl.build(vitdsl.loads(IMAGE)).eval()
    image.load_state_dict({k: v for k, v in video.state_dict().items() if k in image.state_dict()})
    seen = {}
    video.block("frame").register_forward_hook(lambda m, i, o: seen.setdefault("frame", o))
    x = torch.randn(2, 3, 4, 32, 32)
    with torch.no_grad():
        assert video(x).shape == (2, 5)
        want = torch.stack([image(x[:, :, t]) for t in range(4)], 1).flatten(0, 1)  # (b t) d
    assert torch.allclose(seen["frame"], want, atol=1e-5)


def test_a_grouped_model_counts_every_frame():
    summary = vitdsl.summary(vitdsl.loads(FRAMES))
    rows = {r.path: r for r in summary.rows}
    assert (rows["stem"].input_groups, rows["stem"].groups, rows["frame"].groups, rows["ungroup"].groups) == \
        ((1,), 4, 4, 1)
    assert "32×4×4 ×4 groups" in str(summary) and "4 groups → 1 sequence" in str(summary)
    image = vitdsl.summary(vitdsl.loads(IMAGE))
    frames = sum(r.flops for r in summary.rows if r.groups > 1)
    assert frames == 4 * image.total_flops
    model = vitdsl.build(vitdsl.loads(FRAMES)).eval()
    with torch.no_grad(), explicit_attention(), FlopCounterMode(display=False) as counter:
        model(torch.randn(1, *model.input_shape))
    assert summary.total_flops == counter.get_total_flops() == info(vitdsl.validate(vitdsl.loads(FRAMES)))["flops"]


def test_a_window_that_does_not_fit_a_frame_names_the_stage():
    e = fails(FRAMES.replace("params: {window: 2}", "params: {window: 3}"))
    assert said(e) == ("stages.0.blocks.0.block_attn: window 3 does not divide the feature map 8×8 (height 8) "
                           "(input here: image 16×8×8 ×4 groups)")
    assert e.hint.startswith("windows that fit 8×8: 1, 2, 4, 8; square input sizes that work (up to 1024): ")


# -- the zoo's video blueprints -----------------------------------------------------------------------
def test_vivit_summary_shows_frames_as_groups():
    text = str(vitdsl.summary("vivit"))
    assert "64×1024 ×8 groups" in text and "tubelet 2×16×16, frames → groups" in text
    text = str(vitdsl.summary("vivit", "factorized_self_attention"))
    assert "across 8 groups" in text and "520×1024" in text


def _vivit(dim, spatial, heads, mlp):
    return ViViT(image_size=224, frames=32, image_patch_size=16, frame_patch_size=2, num_classes=1000, dim=dim,
                 spatial_depth=spatial, temporal_depth=4, heads=heads, mlp_dim=mlp)


def _cube(cls, dim, depth, heads, mlp, frames):
    return cls(image_size=224, frames=frames, image_patch_size=16, frame_patch_size=2, num_classes=1000, dim=dim,
               depth=depth, heads=heads, mlp_dim=mlp)


PAPER = [("vivit", "base", lambda: _vivit(768, 12, 12, 3072)), ("vivit", "large", lambda: _vivit(1024, 24, 16, 4096)),
         ("vit_3d", "base", lambda: _cube(ViT3d, 768, 12, 12, 3072, 32)),
         ("vit_3d", "large", lambda: _cube(ViT3d, 1024, 24, 16, 4096, 32)),
         ("simple_vit_3d", "small", lambda: _cube(SimpleViT3d, 384, 12, 6, 1536, 16)),
         ("simple_vit_3d", "base", lambda: _cube(SimpleViT3d, 768, 12, 12, 3072, 16)),
         ("simple_vit_3d", "large", lambda: _cube(SimpleViT3d, 1024, 24, 16, 4096, 16)),
         ]


@pytest.mark.parametrize("name,variant,make", PAPER, ids=[f"{n}[{v}]" for n, v, _ in PAPER])
def test_paper_variants_have_the_references_parameters(name, variant, make):
    """The paper's sizes, on vit-pytorch's blocks (its overlay): the reference class at those sizes."""
    with torch.device("meta"):  # sizes only: no weights are made
        expected = sum(p.numel() for p in make().parameters())
    assert vitdsl.summary(name, variant, compat="vit-pytorch").total_params == expected


@pytest.mark.parametrize("variant", cct_3d.__all__)
def test_cct_3d_variants_are_the_cct_functions(variant):
    reference = getattr(cct_3d, variant)(img_size=32, num_frames=4, num_classes=10)
    small = {"image_height": 32, "image_width": 32, "frames": 4, "classes": 10}
    assert vitdsl.summary("cct_3d", variant, small).total_params == sum(p.numel() for p in reference.parameters())
