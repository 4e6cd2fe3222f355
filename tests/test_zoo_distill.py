"""distill_vit (trailing special tokens, pool last, transplant) and efficient_vit (replace named items)."""
import re

import pytest
import torch
from pydantic import Field
from torch import nn

import vitdsl
from vitdsl import VitdslError
from vitdsl.blocks.base import REGISTRY, BlockSpec, linear_params
from vitdsl.blocks.shape import Shape
from vitdsl.cli import main

SMALL = {"image_size": 32, "patch": 8, "dim": 32, "depth": 1, "heads": 2, "dim_head": 8, "mlp": 64, "classes": 5}


def test_distill_token_is_a_suffix_and_pool_last_reads_it():
    g = vitdsl.validate("distill_vit", overrides=SMALL)
    assert g.shape("distill_token") == Shape.tokens(18, 32, grid=(4, 4), prefix=1, suffix=1)
    assert g.shape("norm").suffix == 1 and g.shape("norm").prefix == 1
    assert [s.dims for s in g.outputs] == [(5,), (5,)]
    model = vitdsl.build("distill_vit", overrides=SMALL).eval()
    x = torch.randn(2, 3, 32, 32)
    logits, distill = model(x)
    assert logits.shape == distill.shape == (2, 5)


def test_pool_mean_leaves_out_trailing_tokens():
    from vitdsl.blocks.modules.heads import Pool

    x = torch.randn(2, 4, 3)
    assert torch.equal(Pool("mean", "tokens", suffix=1)(x), x[:, :3].mean(dim=1))
    assert torch.equal(Pool("last", "tokens")(x), x[:, -1])


@pytest.mark.parametrize("layers, message", [
    ("- pool: last", "'pool: last' needs a trailing special token"),
    ("- tokens: {cls: 1, position: last}\n  - pos-embed: sincos2d", "sincos2d positions cover patch tokens only, "
                                                                   "but 1 special token(s) trail"),
    ("- tokens: {cls: 1, position: last}\n  - dwconv: {}", "dwconv works on the patch grid, "
                                                          "but 1 special token(s) trail"),
    ("- tokens: {cls: 1, position: last}\n  - patchify: {patch: 2}", "but 1 special token(s) trail"),
])
def test_grid_blocks_refuse_trailing_tokens(layers, message):
    bp = vitdsl.loads(f"name: t\ninput: {{image: [3, 32, 32]}}\nlayers:\n"
                      f"  - patchify: {{patch: 8, dim: 32}}\n  {layers}\n")
    with pytest.raises(VitdslError, match=message.replace("(", r"\(").replace(")", r"\)")):
        vitdsl.validate(bp)


def _small_wrapper():
    import torchvision_stub  # noqa: F401
    from vit_pytorch.distill import DistillableViT, DistillWrapper

    student = DistillableViT(image_size=32, patch_size=8, num_classes=5, dim=32, depth=1, heads=2, dim_head=8,
                             mlp_dim=64)
    return DistillWrapper(teacher=nn.Identity(), student=student).eval()


def test_transplant_to_vit_gives_the_plain_forward_and_leaves_the_distillation_parts():
    from vitdsl.interop.vit_pytorch import import_weights

    ref = _small_wrapper()
    ours = vitdsl.build("distill_vit", overrides=SMALL).eval()
    import_weights(ours, ref)
    vit, left = vitdsl.transplant(ours, "vit", overrides=SMALL)
    assert sorted(left) == ["distill_head.fc.bias", "distill_head.fc.weight", "distill_token.cls"]
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert (vit.eval()(x) - ref.student(x)).abs().max() <= 1e-5
        assert (vit(x) - ref.student.to_vit().eval()(x)).abs().max() <= 1e-5


def test_transplant_requires_every_target_tensor():
    vit = vitdsl.build("vit", overrides=SMALL)
    with pytest.raises(VitdslError, match="no source for distill_token.cls"):
        vitdsl.transplant(vit, "distill_vit", overrides=SMALL)
    with pytest.raises(VitdslError, match=r"head.fc.weight \(5, 32\) → \(7, 32\)"):
        vitdsl.transplant(vit, "vit", overrides={**SMALL, "classes": 7})
    with pytest.raises(VitdslError, match="variant and overrides apply to a blueprint target"):
        vitdsl.transplant(vit, vit, overrides=SMALL)


# -- replace -----------------------------------------------------------------------------------

EFF = {"image_size": 32, "patch": 8, "dim": 32, "depth": 1, "heads": 2, "dim_head": 8, "mlp": 64, "classes": 5}


class LinearMixer(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.norm, self.q, self.kv = nn.LayerNorm(dim), nn.Linear(dim, hidden), nn.Linear(dim, 2 * hidden)
        self.out = nn.Linear(hidden, dim)

    def forward(self, x):
        h = self.norm(x)
        k, v = self.kv(h).chunk(2, dim=-1)
        context = k.softmax(dim=1).transpose(1, 2) @ v  # (B, hidden, hidden): linear in the token count
        return x + self.out(self.q(h).softmax(dim=-1) @ context)


class LinearAttnSpec(BlockSpec):
    """A test-only linear attention mixer."""

    block = "test-linear-attn"
    takes = ("tokens",)
    hidden: int = Field(16, description="Width of q, k and v.")

    def count_params(self, x: Shape) -> int:
        d, h = x.features, self.hidden
        return 2 * d + linear_params(d, h) + linear_params(d, 2 * h) + linear_params(h, d)

    def flops(self, x: Shape) -> int:
        n, d, h = *x.dims, self.hidden
        return 2 * n * (3 * d * h + h * d) + 4 * n * h * h

    def build(self, x: Shape):
        return LinearMixer(x.features, self.hidden)


@pytest.fixture
def linear_attn():
    vitdsl.register_block(LinearAttnSpec)
    yield LinearAttnSpec
    REGISTRY.pop(LinearAttnSpec.block)


def test_replace_the_transformer_with_a_user_block(linear_attn):
    stack = {"repeat": 2, "layers": [{"test-linear-attn": {"hidden": 8}}, {"mlp": {"mult": 2}}]}
    bp = vitdsl.load("efficient_vit", overrides=EFF, replace={"transformer": stack})
    text = bp.dump()
    assert "test-linear-attn" in text and "global-attn" not in text and "name: transformer" in text
    model = vitdsl.build(bp)
    from vitdsl.graph.build import info

    assert sum(p.numel() for p in model.parameters()) == info(vitdsl.validate(bp))["params"]
    model(torch.randn(2, 3, 32, 32)).sum().backward()
    assert all(p.grad is not None for p in model.parameters())
    from rich.console import Console

    console = Console(width=200, record=True)
    console.print(vitdsl.summary(bp))
    assert "test-linear-attn" in console.export_text()


def test_replace_reaches_named_items_at_any_depth():
    bp = vitdsl.load("efficient_vit", overrides=EFF, replace={"ff": {"mlp": {"mult": 2}}, "attn": {"norm": "layer"}})
    model = vitdsl.build(bp)
    assert model.state_dict()["transformer.0.layers.0.ff.fc1.weight"].shape == (64, 32)
    assert not any(".attn.qkv" in k for k in model.state_dict())


def test_replace_via_the_cli(linear_attn, capsys):
    assert main(["summary", "efficient_vit", "--set", "image_size=32", "--set", "dim=32", "--replace",
                 "transformer={test-linear-attn: {hidden: 8}}"]) == 0
    assert "test-linear-attn" in capsys.readouterr().out


@pytest.mark.parametrize("replace, message", [
    ({"transformr": {"norm": "layer"}}, "cannot replace 'transformr'.*did you mean"),
    ({"transformer": {"norm": "layer", "name": "x"}}, "the replacement sets name"),
    ({"transformer": 3}, "the replacement must be a layer item"),
    ({"transformer": {"no-such-block": {}}}, "unknown block 'no-such-block'"),
    ({"ff": {"mlp": {"mlt": 2}}}, "mlt"),
])
def test_replace_errors_are_clear(replace, message):
    with pytest.raises(VitdslError) as e:
        vitdsl.validate(vitdsl.load("efficient_vit", overrides=EFF, replace=replace))
    from vitdsl.cli import render_error

    assert re.search(message, render_error(e.value), re.I | re.S)


def test_cli_replace_needs_name_equals_item(capsys):
    assert main(["validate", "efficient_vit", "--replace", "transformer"]) == 2
    assert "not of the form name=item" in capsys.readouterr().err


def test_efficient_vit_default_is_the_readme_wrapper_count():
    import torchvision_stub  # noqa: F401
    from vit_pytorch.efficient import ViT
    from vit_pytorch.vit import Transformer

    with torch.device("meta"):
        ref = ViT(dim=512, image_size=2048, patch_size=32, num_classes=1000,
                  transformer=Transformer(dim=512, depth=12, heads=8, dim_head=64, mlp_dim=2048))
        wrapper = sum(p.numel() for p in ref.parameters()) - sum(p.numel() for p in ref.transformer.parameters())
    assert wrapper == 4_192_744
    model = vitdsl.build("efficient_vit", device="meta")
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in ref.parameters())
