"""Options added for the small-dataset ViT (patchify shift, LSA attention) and the PatchMerger ViT
(token-merge, pos-embed unused_rows): their behaviour beyond parity, and the errors users can hit."""
import math

import pytest
import torch

import vitdsl
from vitdsl import VitdslError, validate
from vitdsl.blocks import Shape, lookup
from vitdsl.blocks.modules.attention import explicit_attention

TOKENS = """\
name: t
input: {tokens: [10, 16]}
layers:
  - token-merge: {tokens: 3}
"""


def fails(path, *extra):
    with pytest.raises(VitdslError) as e:
        validate(str(path), *extra)
    return e.value


# -- patchify: shift --------------------------------------------------------------------------------
def test_shift_concatenates_the_image_with_its_four_shifts_in_order():
    """With 1×1 patches and an identity projection each token is the raw 5C vector:
    [x, shifted right, left, down, up], the vacated pixels zero."""
    spec = lookup("patchify")(patch=1, dim=10, shift=2)
    module = spec.build(Shape.image(2, 5, 6))
    with torch.no_grad():
        module.proj.weight.copy_(torch.eye(10))
        module.proj.bias.zero_()
    x = torch.randn(1, 2, 5, 6)
    out = module(x).view(5, 6, 10).permute(2, 0, 1)  # (5C, H, W)
    want = torch.zeros(5, 2, 5, 6)
    want[0] = x[0]
    want[1, :, :, 2:] = x[0, :, :, :-2]   # right
    want[2, :, :, :-2] = x[0, :, :, 2:]   # left
    want[3, :, 2:, :] = x[0, :, :-2, :]   # down
    want[4, :, :-2, :] = x[0, :, 2:, :]   # up
    assert torch.equal(out, want.reshape(10, 5, 6))


def test_shift_multiplies_the_patch_vector_by_five():
    spec = lookup("patchify")(patch=4, dim=8, shift=1, pre_norm="layer")
    x = Shape.image(3, 16, 16)
    assert spec.patch_dim(x) == 5 * 3 * 16
    assert spec.count_params(x) == 2 * 240 + 240 * 8 + 8 == sum(p.numel() for p in spec.build(x).parameters())


def test_shift_must_be_smaller_than_the_image(write):
    e = fails(write("name: t\ninput: {image: [3, 4, 4]}\nlayers:\n  - patchify: {patch: 2, dim: 8, shift: 4}\n"))
    assert e.message == "shift 4 must be smaller than the image (4×4) (input here: image 3×4×4)"
    assert e.hint.startswith("shift by a few pixels; vit-pytorch's SPT uses 1")


# -- attention: temperature and mask_self (LSA) -----------------------------------------------------
def lsa(**fields):
    spec = lookup("lsa-attn")(heads=2, dim_head=8, **{"temperature": "fixed", "mask_self": False, **fields})
    return spec, spec.build(Shape.tokens(5, 16)).eval()


def test_learned_temperature_is_one_parameter_initialised_to_the_usual_scale():
    spec, module = lsa(temperature="learned")
    assert module.temperature.shape == ()
    assert module.temperature.item() == pytest.approx(math.log(8 ** -0.5))
    assert spec.count_params(Shape.tokens(5, 16)) == lookup("global-attn")(heads=2, dim_head=8).count_params(
        Shape.tokens(5, 16)) + 1 == sum(p.numel() for p in module.parameters())


def test_learned_temperature_scales_the_logits_and_trains():
    _, fixed = lsa()
    _, learned = lsa(temperature="learned")
    learned.load_state_dict(fixed.state_dict() | {"temperature": learned.temperature.detach()})
    x = torch.randn(2, 5, 16)
    assert torch.allclose(learned(x), fixed(x), atol=1e-6)  # exp(log s) = s
    with torch.no_grad():
        learned.temperature.add_(1.0)
    assert not torch.allclose(learned(x), fixed(x), atol=1e-3)
    learned(x).sum().backward()
    assert learned.temperature.grad is not None and learned.temperature.grad.item() != 0


def test_mask_self_gives_no_weight_to_oneself():
    _, module = lsa(mask_self=True)
    maps = []
    with torch.no_grad(), explicit_attention(lambda m, a: maps.append(a)):
        module(torch.randn(2, 5, 16))
    assert maps[0].diagonal(dim1=-2, dim2=-1).abs().max().item() == 0
    assert torch.allclose(maps[0].sum(-1), torch.ones(2, 2, 5))


def test_mask_self_on_a_lone_token_is_finite():
    """-max rather than -inf, as vit-pytorch: one token attends to itself with weight 1, not NaN."""
    _, module = lsa(mask_self=True, temperature="learned")
    assert torch.isfinite(module(torch.randn(1, 1, 16))).all()


def test_lsa_without_its_two_options_is_global_attention_on_the_fused_path():
    _, module = lsa()
    assert module.temperature is None and not module.mask_self and module.fused()
    spec = lookup("lsa-attn")(heads=2, dim_head=8)  # the paper's: both on
    assert (spec.temperature, spec.mask_self) == ("learned", True)


# -- pos-embed: unused_rows ---------------------------------------------------------------------------
def test_unused_rows_are_counted_but_never_added():
    spec = lookup("pos-embed")(kind="learned", unused_rows=2)
    x = Shape.tokens(4, 8)
    module = spec.build(x)
    assert module.pos.shape == (6, 8) and spec.count_params(x) == 48
    t = torch.randn(1, 4, 8)
    before = module(t)
    with torch.no_grad():
        module.pos[4:].fill_(1e6)
    assert torch.equal(module(t), before)


def test_unused_rows_need_a_learned_table(write):
    e = fails(write("name: t\ninput: {image: [3, 8, 8]}\nlayers:\n  - patchify: {patch: 4, dim: 8}\n"
                    "  - pos-embed: {kind: sincos2d, unused_rows: 1}\n"))
    assert e.message == "pos-embed: unused_rows needs kind: learned (a sincos2d position has no table)"


# -- token-merge ----------------------------------------------------------------------------------------
def test_token_merge_is_softmax_of_queries_over_normalised_tokens(write):
    model = vitdsl.build(str(write(TOKENS))).eval()
    merge = model.block("token_merge")
    x = torch.randn(2, 10, 16)
    n = torch.nn.functional.layer_norm(x, (16,), merge.norm.weight, merge.norm.bias, eps=1e-6)  # the papers' eps
    want = torch.softmax(merge.queries @ n.transpose(1, 2) / 4, dim=-1) @ n
    got = model(x)
    assert got.shape == (2, 3, 16)
    assert torch.allclose(got, want, atol=1e-6)


def test_token_merge_drops_the_grid_and_the_special_tokens(write):
    e = fails(write("name: t\ninput: {image: [3, 32, 32]}\nlayers:\n  - patchify: {patch: 8, dim: 16}\n"
                    "  - tokens: {cls: 1}\n  - token-merge: 4\n  - pool: cls\n"))
    assert e.message.startswith("'pool: cls' needs a class token, but no tokens block comes before it")
    e = fails(write("name: t\ninput: {image: [3, 32, 32]}\nlayers:\n  - patchify: {patch: 8, dim: 16}\n"
                    "  - token-merge: 4\n  - pos-embed: sincos2d\n"))
    assert e.message.startswith("sincos2d positions need tokens that come from a 2-D patch grid")


def test_token_merge_without_norm():
    spec = lookup("token-merge")(tokens=2, norm="none")
    x = Shape.tokens(7, 4)
    assert spec.infer(x) == Shape.tokens(2, 4)
    assert spec.count_params(x) == 8 == sum(p.numel() for p in spec.build(x).parameters())


# -- the zoo blueprints -----------------------------------------------------------------------------------
def test_patch_merger_vit_merges_mid_stack():
    graph = validate("patch_merger_vit")
    shapes = {node.path: output.dims for node, _, output in graph}
    assert shapes["blocks.5.ff"] == (256, 1024)
    assert shapes["merger"] == (8, 1024)
    assert shapes["merged_blocks.0.attn"] == (8, 1024)


def test_patch_merger_vit_can_merge_after_the_last_layer():
    graph = validate("patch_merger_vit", overrides={"merge_layer": 12})
    assert not [p for p in graph.order if p.startswith("merged_blocks")]
    assert graph.order[graph.order.index("merger") + 1] == "norm"
