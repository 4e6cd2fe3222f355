"""RegionViT and what it brought: weight sharing between blocks (`share:`), region tokens (`merge: sequence`,
`region-attn`, `select`), the PEG that lets special tokens pass, and their errors."""
import copy
import pickle
import subprocess
import sys
from dataclasses import replace

import pytest
import torch
from vit_pytorch.regionvit import RegionViT

import vitdsl
from vitdsl import VitdslError, validate
from vitdsl.blocks.attention import RegionAttn
from vitdsl.blocks.dwconv import DWConv
from vitdsl.blocks.heads import Merge
from vitdsl.blocks.mlp import MLP
from vitdsl.blocks.select import Select
from vitdsl.blocks.shape import Shape
from vitdsl.errors import ShapeError
from vitdsl.graph import info
from vitdsl.interop.transfer import import_state_dict
from vitdsl.interop.vit_pytorch import import_weights

# 64×64 images, 2×2 windows: region tokens 8×8 → 1×1, local tokens 16×16 → 2×2
SMALL = {"image_size": 64, "window": 2, "dims": [16, 32, 48, 64], "depths": [1, 2, 1, 1], "heads": [2, 2, 2, 2],
         "dim_head": 8, "classes": 10}


def small(**kw):
    return vitdsl.build("regionvit", overrides={**SMALL, **kw}).eval()


def blueprint(layers: str, input: str = "image: [3, 32, 32]") -> str:
    return f"name: t\ninput: {{{input}}}\nlayers:\n{layers}"


def fails(path, exc=VitdslError, **kw) -> VitdslError:
    with pytest.raises(exc) as e:
        vitdsl.build(str(path), **kw)
    return e.value


# -- the zoo blueprint ------------------------------------------------------------------------------
def test_small_model_with_another_window_matches_the_reference():
    torch.manual_seed(0)
    ref = RegionViT(dim=(16, 32, 48, 64), depth=(1, 2, 1, 1), window_size=2, num_classes=10).eval()
    model = small(heads=[4, 4, 4, 4], dim_head=32)
    import_weights(model, ref)
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in ref.parameters())
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert (model(x) - ref(x)).abs().max() <= 1e-5


def test_the_downsample_is_one_conv_for_both_streams_and_the_bias_table_one_per_stage():
    model = small()
    for s in (1, 2, 3):
        stage = model.stages[str(s)]
        assert stage.region.depthwise.weight is stage.local.depthwise.weight
        assert stage.region.depthwise.bias is stage.local.depthwise.bias
    blocks = model.stages["1"].blocks
    assert blocks["1"].attn.rel_pos_bias.weight is blocks["0"].attn.rel_pos_bias.weight
    assert blocks["1"].attn.qkv.weight is not blocks["0"].attn.qkv.weight  # only the table is shared
    assert model.stages["2"].blocks["0"].attn.rel_pos_bias.weight is not blocks["0"].attn.rel_pos_bias.weight


def test_summary_shows_regional_attention_and_counts_shared_weights_once():
    s = vitdsl.summary("regionvit")
    rows = {r.path: r for r in s.rows}
    assert rows["stages.0.blocks.0.attn"].pattern == "regional 7×7 + 64 region tokens"
    assert rows["stages.3.blocks.0.attn"].pattern == "regional 7×7 + 1 region token"
    assert rows["stages.1.region"].pattern == "8×8 → 4×4; weights of local"
    assert rows["stages.1.region"].params == 0
    assert rows["stages.1.local"].params == 128 * 64 * 9 + 128
    assert rows["stages.2.blocks.5.attn"].pattern == "regional 7×7 + 4 region tokens; rel_pos_bias of blocks.0.attn"
    table = 13 * 13 * 4
    assert rows["stages.2.blocks.0.attn"].params - rows["stages.2.blocks.5.attn"].params == table
    assert sum(r.params for r in s.rows) == s.total_params == 12_749_176
    assert "regional 7×7 + 64 region tokens" in str(s)


def test_validate_counts_shared_weights_once_without_torch():
    code = ("import sys, vitdsl; g = vitdsl.validate('regionvit'); "
            "from vitdsl.graph import info; print(info(g)['params'], 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["12749176", "False"]


# vit-pytorch's count at these sizes and the paper's qkv biases: 3 × width per attention block
@pytest.mark.parametrize("variant,params", [("tiny", 15_403_766 + 10_368), ("small", 34_127_485 + 15_552),
                                            ("medium", 44_616_733 + 22_464), ("base", 78_829_956 + 29_952)])
def test_paper_variants_validate(variant, params):
    assert info(validate("regionvit", variant))["params"] == params


def test_tokenizer_and_peg_options_build():
    three = small(tokenizer="3conv")
    assert [type(m).__name__ for m in three.local_3conv] == ["ConvNormAct"] * 3
    assert not hasattr(three, "local_conv")
    peg = small(use_peg=True)
    assert not hasattr(peg.stages["0"], "peg") and hasattr(peg.stages["1"], "peg")
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert three(x).shape == peg(x).shape == (1, 10)


def test_a_wrong_image_size_names_the_stage_the_grids_and_the_sizes_that_fit():
    with pytest.raises(ShapeError) as e:
        validate("regionvit", overrides={"image_size": 196})
    assert e.value.path == "stages.1.blocks.0.attn"
    assert e.value.message == ("the 4×4 region tokens do not split the 25×25 patch grid into windows (the height 25 "
                               "is no multiple of 4) (input here: tokens 641×128)")
    assert e.value.hint.startswith("region grids that fit 25×25: 1, 5, 25; square input sizes that work "
                                   "(up to 1024): multiples of 224")


# -- weight sharing ---------------------------------------------------------------------------------
SHARED_MLP = blueprint("""  - mlp: {hidden: 16, residual: false}
    name: a
  - mlp: {hidden: 16, residual: false}
    name: b
    share: a
""", input="tokens: [4, 8]")


def test_a_shared_block_is_the_owners_tensors_with_gradients_from_both_uses(write):
    model = vitdsl.build(str(write(SHARED_MLP)))
    assert sum(p.numel() for p in model.parameters()) == info(validate(str(write(SHARED_MLP))))["params"] == \
        2 * 8 + (8 * 16 + 16) + (16 * 8 + 8)
    assert vitdsl.summary(model).total_params == sum(p.numel() for p in model.parameters())
    assert [r.params for r in vitdsl.summary(model).rows] == [296, 0]
    x = torch.randn(2, 4, 8)
    model(x).square().sum().backward()
    got = {n: p.grad.clone() for n, p in model.named_parameters()}
    assert set(got) == {f"a.{k}" for k in ("norm.weight", "norm.bias", "fc1.weight", "fc1.bias", "fc2.weight",
                                           "fc2.bias")}
    a = copy.deepcopy(model.a)  # the same function, applied twice by hand
    a(a(x)).square().sum().backward()
    for n, p in a.named_parameters():
        assert torch.allclose(got[f"a.{n}"], p.grad)


def test_tied_keys_in_state_dict_survive_copies_and_loading(write):
    model = vitdsl.build(str(write(SHARED_MLP)))
    state = model.state_dict()
    assert "a.fc1.weight" in state and "b.fc1.weight" in state  # as PyTorch lists tied weights
    assert state["a.fc1.weight"].data_ptr() == state["b.fc1.weight"].data_ptr()
    for clone in (copy.deepcopy(model), pickle.loads(pickle.dumps(model))):
        assert clone.b.fc1.weight is clone.a.fc1.weight
        assert clone.a.fc1.weight is not model.a.fc1.weight
    fresh = vitdsl.build(str(write(SHARED_MLP)))
    fresh.load_state_dict(state)
    assert fresh.b.fc1.weight is fresh.a.fc1.weight
    assert torch.equal(fresh.b.fc1.weight, model.a.fc1.weight)


def test_vitdsl_share_keeps_internal_ties(write):
    backbone, model = vitdsl.build(str(write(SHARED_MLP))), vitdsl.build(str(write(SHARED_MLP)))
    vitdsl.share(model, backbone)
    assert model.a.fc1.weight is model.b.fc1.weight is backbone.a.fc1.weight


def test_import_fills_a_shared_tensor_once(write):
    model = vitdsl.build(str(write(SHARED_MLP)))
    ref = {k.replace("a.", "x.", 1): torch.randn_like(v) for k, v in model.state_dict().items() if k.startswith("a.")}
    mapping = import_state_dict(model, ref, [(r"x\.", "a.")])
    assert torch.equal(model.b.fc2.weight, ref["x.fc2.weight"]) and model.b.fc2.weight is model.a.fc2.weight
    assert set(mapping.values()) == {k.replace("x.", "a.", 1) for k in ref}
    with pytest.raises(VitdslError) as e:  # two different tensors cannot both be the one shared tensor
        import_state_dict(model, {**ref, "y.fc1.weight": torch.randn(16, 8)}, [(r"x\.", "a."), (r"y\.", "b.")])
    assert "two reference tensors map to 'a.fc1.weight'" in str(e.value)


ALBERT = blueprint("""  - repeat: 3
    layers:
      - global-attn: {heads: 2, dim_head: 4}
        name: attn
        share: attn
      - mlp: {hidden: 16}
        name: ff
        share: ff
""", input="tokens: [4, 8]")


def test_a_block_naming_itself_shares_iteration_zero_in_every_iteration(write):
    model = vitdsl.build(str(write(ALBERT)))
    one_layer = sum(p.numel() for p in model.blocks["0"].parameters())
    assert sum(p.numel() for p in model.parameters()) == one_layer == info(validate(str(write(ALBERT))))["params"]
    for k in ("1", "2"):
        assert model.blocks[k].attn.qkv.weight is model.blocks["0"].attn.qkv.weight
        assert model.blocks[k].ff.fc1.weight is model.blocks["0"].ff.fc1.weight
    rows = vitdsl.summary(model).rows
    assert [r.pattern for r in rows[2:4]] == ["global; weights of blocks.0.attn", "weights of blocks.0.ff"]


def test_a_model_with_shared_weights_compiles_and_exports_whole():
    model = small()
    x = torch.randn(1, 3, 64, 64)
    explanation = torch._dynamo.explain(model)(x)
    assert explanation.graph_break_count == 0 and explanation.graph_count == 1
    with torch.no_grad():
        expected = model(x)
        assert torch.allclose(torch.compile(model, backend="eager")(x), expected, atol=1e-6)
        assert torch.allclose(torch.export.export(model, (x,)).module()(x), expected, atol=1e-6)


def test_replace_keeps_a_blocks_share(write):
    bp = vitdsl.load(str(write(ALBERT)), replace={"ff": {"mlp": {"hidden": 32}}})
    model = vitdsl.build(bp)
    assert model.blocks["2"].ff.fc1.weight is model.blocks["0"].ff.fc1.weight
    assert model.blocks["0"].ff.fc1.weight.shape == (32, 8)


@pytest.mark.parametrize("layers,message", [
    ("""  - mlp: {hidden: 16}
    name: a
  - mlp: {hidden: 32}
    share: a
""", "mlp: share: the fields differ from those of 'a', whose weights this block uses: hidden 32 here, 16 there"),
    ("""  - mlp: {hidden: 16}
    share: b
  - mlp: {hidden: 16}
    name: b
""", "mlp: share names 'b', which comes later: a block can only use an earlier one's weights"),
    ("""  - mlp: {hidden: 16}
    name: a
    share: a
""", ("a: share names the block itself ('a'), which means 'every iteration uses iteration 0's weights' and "
          "needs an enclosing repeat")),
    ("""  - repeat: 2
    layers: [{mlp: {hidden: 16}}]
  - mlp: {hidden: 16}
    share: blocks
""", "mlp: share names 'blocks', which is a repeat, stages or parallel item: name one block"),
    ("""  - mlp: {hidden: 16}
    name: a
  - global-attn: {heads: 2}
    share: a
""", "global_attn: share: this global-attn cannot use the weights of 'a', a mlp"),
    ("""  - global-attn: {heads: 2, dim_head: 4}
    name: a
  - global-attn: {heads: 2, dim_head: 4}
    share: {with: a, params: [rel_pos_bias]}
""", "global_attn: share: 'rel_pos_bias' is no parameter, buffer or submodule of a global-attn"),
    ("""  - mlp: {hidden: 16}
    name: a
  - mlp: {hidden: 16}
    share: {with: a, params: [fc1, fc1.weight]}
""", "mlp: share: params names 'fc1.weight' twice (it is part of 'fc1')"),
    ("""  - mlp: {hidden: 16}
    name: a
  - mlp: {hidden: 16}
    share: {with: a, param: [fc1]}
""", "mlp: 'share' takes a block name, or {with: NAME, params: [part, ...]}, got {'with': 'a', 'param': ['fc1']}"),
])
def test_share_mistakes_are_clear(write, layers, message):
    e = fails(write(blueprint(layers, input="tokens: [4, 8]")))
    assert message in str(e)


def test_a_share_whose_weights_do_not_fit_the_input_is_refused_before_any_weight_exists(write):
    path = write(blueprint("""  - pos-embed: learned
    name: a
  - tokens: {cls: 1}
  - pos-embed: learned
    share: a
""", input="tokens: [16, 8]"))
    with pytest.raises(VitdslError) as e:
        validate(str(path))
    assert e.value.path == "pos_embed"
    assert e.value.message == ("share: 'a' holds 128 parameters for its input (tokens 16×8), but this block needs "
                               "136 for its own (tokens 17×8)")


def test_a_part_of_another_shape_is_refused(write):
    e = fails(write(blueprint("""  - mlp: {hidden: 16}
    name: a
  - mlp: {hidden: 32}
    share: {with: a, params: [fc1]}
""", input="tokens: [4, 8]")))
    assert "mlp: share: part 'fc1' holds 144 parameters in 'a' but 288 here" in str(e)
    # as many parameters, in another shape: caught when the tensors are tied
    e = fails(write(blueprint("""  - mlp: {hidden: 16}
    name: a
  - head: {classes: 16}
  - mlp: {hidden: 8}
    share: {with: a, params: [fc1.weight]}
""", input="tokens: [4, 8]")))
    assert e.path == "mlp" and e.location.line == 8
    assert e.message == "share: this block's 'fc1.weight' (8, 16) cannot be the one of 'a', which has (16, 8)"


# -- region tokens ----------------------------------------------------------------------------------
REGIONS = replace(Shape.tokens(4 + 64, 16, grid=(8, 8), prefix=4), prefix_grid=(2, 2))


def test_merge_sequence_puts_the_region_map_in_front_and_remembers_its_grid():
    spec = Merge(mode="sequence")
    out = spec.infer(Shape.image(16, 2, 2), Shape.tokens(64, 16, grid=(8, 8)))
    assert out == REGIONS
    r, t = torch.randn(1, 16, 2, 2), torch.randn(1, 64, 16)
    y = spec.build(Shape.image(16, 2, 2), Shape.tokens(64, 16, grid=(8, 8)))(r, t)
    assert torch.equal(y[:, :4], r.flatten(2).transpose(1, 2)) and torch.equal(y[:, 4:], t)
    assert spec.pattern(Shape.image(16, 2, 2), Shape.tokens(64, 16, grid=(8, 8))) == "4 special + 64"


def test_select_splits_a_joined_sequence_back():
    assert Select(tokens="prefix").infer(REGIONS) == Shape.tokens(4, 16, grid=(2, 2))
    assert Select(tokens="patches").infer(REGIONS) == Shape.tokens(64, 16, grid=(8, 8))
    x = torch.randn(1, 68, 16)
    assert torch.equal(Select(tokens="patches").build(REGIONS)(x), x[:, 4:])
    with pytest.raises(ShapeError, match="'select: prefix' needs special tokens leading the sequence, but none do"):
        Select(tokens="prefix").infer(Shape.tokens(64, 16, grid=(8, 8)))


def test_peg_lets_special_tokens_pass():
    spec = DWConv(kernel=3, convs=1, norm="none", special="pass")
    assert spec.infer(REGIONS) == REGIONS
    x = torch.randn(1, 68, 16)
    y = spec.build(REGIONS)(x)
    assert torch.equal(y[:, :4], x[:, :4]) and not torch.equal(y[:, 4:], x[:, 4:])
    with pytest.raises(ShapeError, match="dwconv works on the patch grid, but 4 special token"):
        DWConv(kernel=3, convs=1).infer(REGIONS)


def test_regional_attention_is_windows_with_their_region_token():
    spec = RegionAttn(heads=2, dim_head=8, rel_pos_index="col-major")
    assert spec.window_size(REGIONS) == (4, 4)
    assert spec.pattern(REGIONS) == "regional 4×4 + 4 region tokens"
    assert spec.part_params("rel_pos_bias", REGIONS) == 7 * 7 * 2
    module = spec.build(REGIONS).eval()
    assert dict(module.named_parameters())["rel_pos_bias.weight"].numel() == 7 * 7 * 2
    x = torch.randn(1, 68, 16)
    with torch.no_grad():
        y = module(x)
        # a change to a local token reaches its window and the window's region token, nothing else
        x2 = x.clone()
        x2[:, 4 + 8 * 4 + 5] += torch.randn(16)  # row 4, column 5: window 3
        d = (module(x2) - y).abs().sum(-1)[0]
        window = torch.zeros(8, 8, dtype=torch.bool)
        window[4:, 4:] = True
        assert (d[:4] > 0).tolist() == [False, False, False, True]
        assert ((d[4:].view(8, 8) > 0) == window).all()
        # a change to a region token reaches every region token, then every window
        x3 = x.clone()
        x3[:, 0] += torch.randn(16)
        assert ((module(x3) - y).abs().sum(-1) > 0).all()


@pytest.mark.parametrize("shape,message", [
    (replace(Shape.tokens(9 + 64, 16, grid=(8, 8), prefix=9), prefix_grid=(3, 3)),
     "the 3×3 region tokens do not split the 8×8 patch grid into windows (the height 8 is no multiple of 3)"),
    (Shape.tokens(65, 16, grid=(8, 8), prefix=1),
     ("region-attn needs region tokens on a 2-D grid leading the sequence, but the 1 special "
      "token(s) here carry no grid")),
])
def test_region_grid_errors(shape, message):
    with pytest.raises(ShapeError) as e:
        RegionAttn(heads=2).infer(shape)
    assert e.value.message == message


def test_window_must_match_the_region_grid():
    with pytest.raises(ShapeError) as e:
        RegionAttn(heads=2, window=2).infer(REGIONS)
    assert e.value.message == ("the 2×2 region tokens split the 8×8 patch grid into 4×4 windows, not the 2×2 "
                               "windows that window: 2 says")
    assert e.value.hint == "set window: 4 (or leave it out), or give the region tokens a 4×4 grid; " \
                           "windows that fit 8×8: 1, 2, 4, 8"


def test_region_attention_takes_tokens_and_local_attention_a_map(write):
    e = fails(write(blueprint("  - region-attn: {heads: 2}\n", input="image: [16, 8, 8]")))
    assert e.message == "'region-attn' takes tokens, but the input gives image 16×8×8"
    e = fails(write(blueprint("  - local-attn: {heads: 2}\n", input="tokens: [64, 16]")))
    assert e.message == "'local-attn' takes image, but the input gives tokens 64×16"
    e = fails(write(blueprint("  - region-attn: {heads: 2}\n", input="tokens: [64, 16]")))
    assert e.message == "region-attn needs tokens on a 2-D patch grid, but these carry none (input here: tokens 64×16)"
    assert e.hint == "join a region map in front of a patch grid with 'merge: sequence'"


def test_merge_sequence_needs_one_width():
    with pytest.raises(ShapeError) as e:
        Merge(mode="sequence").infer(Shape.image(8, 2, 2), Shape.tokens(64, 16, grid=(8, 8)))
    assert e.value.message == "merge: sequence needs one width, but input 0 has 8 features and input 1 16"


def test_feed_forward_without_trailing_dropout():
    x = Shape.tokens(4, 8)
    for out_dropout, calls in ((True, 2), (False, 1)):
        module = MLP(hidden=16, dropout=0.5, out_dropout=out_dropout).build(x).train()
        seen = []
        module.drop.register_forward_hook(lambda m, i, o, seen=seen: seen.append(o))
        module(torch.randn(2, 4, 8))
        assert len(seen) == calls
    assert small().stages["0"].blocks["0"].ff.out_dropout is False
