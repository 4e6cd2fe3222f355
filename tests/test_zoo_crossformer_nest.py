"""CrossFormer and NesT: the dynamic position bias (both indexings), scalar positions on window maps,
patchify to a map, list comprehensions in expressions, their errors and small builds."""
import pytest
import torch
from vit_pytorch.crossformer import Attention as CrossFormerAttention

import vitdsl
from vitdsl.blueprint.expr import evaluate
from vitdsl.errors import ShapeError, VitdslError
from vitdsl.graph import info
from vitdsl.interop.transfer import import_state_dict

SMALL = {"crossformer": {"image_size": 64, "dims": [32, 32, 64, 64], "depths": [1, 1, 1, 1],
                         "local_windows": [4, 4, 2, 2], "global_windows": [4, 2, 2, 1]},
         "nest": {"image_size": 32, "dim": 16, "heads": 2, "depths": [1, 1, 1]}}


def one_block(size, channels, **fields):
    return vitdsl.Blueprint.model_validate({"name": "t", "input": {"image": [channels, *size]},
                                            "layers": [{"local-attn": fields}]})


def randomize(model):
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.5)
    return model


# -- the dynamic position bias ------------------------------------------------------------------
@pytest.mark.parametrize("kind,partition", [("short", "block"), ("long", "grid")])
def test_dynamic_bias_reproduces_vit_pytorch_attention(kind, partition):
    """A single CrossFormer attention (32 channels: one head of 32) on a 6×6 map with 3×3 windows."""
    torch.manual_seed(0)
    ref = randomize(CrossFormerAttention(32, attn_type=kind, window_size=3)).eval()
    model = vitdsl.build(one_block((6, 6), 32, partition=partition, window=3, rel_pos_bias="dynamic",
                                   bias_index="vit-pytorch", qkv_bias=False, norm_eps=1e-5)).eval()
    rules = [(r"norm\.g$", "local_attn.norm.weight"), (r"norm\.b$", "local_attn.norm.bias"),
             (r"to_qkv\.", "local_attn.qkv."), (r"to_out\.", "local_attn.out."), (r"dpb\.", "local_attn.rel_pos_mlp.")]
    import_state_dict(model, ref.state_dict(), rules)
    x = torch.randn(2, 32, 6, 6)
    with torch.no_grad():
        ours, theirs = model(x), ref(x) + x
    # The N(0, 0.5²) weights make outputs of magnitude ~18, where one float32 ulp is ~2e-6, and the two
    # sides sum in different orders (fused SDPA here, einsum and an explicit softmax there; the matmul
    # blocking also changes with the thread count): they differ by a few ulps of that magnitude. The
    # rounding of a length-n inner product is at most ~n·eps relative, so allow n·eps of the output
    # scale for the longest one (n = 32 channels): ~7e-5, while a wrongly indexed bias is off by ~0.1.
    tol = 32 * torch.finfo(torch.float32).eps * theirs.abs().max().item()
    torch.testing.assert_close(ours, theirs, rtol=0, atol=tol)


def test_exact_index_gives_each_pair_the_bias_of_its_own_offset():
    torch.manual_seed(0)
    bp = one_block((6, 9), 16, window=3, dim_head=8, rel_pos_bias="dynamic", bias_hidden=8)
    attn = randomize(vitdsl.build(bp)).local_attn
    with torch.no_grad():
        bias = attn.bias()
        # tokens i = (0, 0) and j = (2, 1) of a 3×3 window: the offset (Δrow, Δcol) = i - j = (-2, -1)
        assert bias.shape == (9, 9)
        assert bias[0, 7] == attn.rel_pos_mlp(torch.tensor([[-2.0, -1.0]]))[0, 0]
        assert bias[7, 0] == attn.rel_pos_mlp(torch.tensor([[2.0, 1.0]]))[0, 0]
    assert attn.rel_pos_mlp[0].out_features == 8 and attn.rel_pos_offsets.shape == (25, 2)


def test_vit_pytorch_index_reads_other_offsets():
    torch.manual_seed(0)
    attn = randomize(vitdsl.build(one_block((6, 6), 16, window=3, dim_head=8, rel_pos_bias="dynamic",
                                            bias_index="vit-pytorch"))).local_attn
    assert attn.rel_pos_offsets.shape == (49, 2)  # [-3, 3]², not [-2, 2]²
    with torch.no_grad():
        # pair (0, 7), offset (-2, -1), reads row (-2+2)·5 + (-1+2) = 1 of the 7×7 table: offset (-3, -2)
        assert attn.bias()[0, 7] == attn.rel_pos_mlp(torch.tensor([[-3.0, -2.0]]))[0, 0]


def test_dynamic_bias_rules():
    bp = one_block((8, 8), 64, window=4, rel_pos_bias="dynamic")
    rows = vitdsl.summary(bp).rows
    assert rows[0].pattern == "window 4×4, dynamic bias"
    m = 16  # width // 4; Linear(2→m), 3 × LayerNorm(m), 2 × Linear(m→m), Linear(m→1)
    table = (2 * m + m) + 3 * 2 * m + 2 * (m * m + m) + (m + 1)
    plain = vitdsl.summary(one_block((8, 8), 64, window=4, rel_pos_bias="none")).rows[0]
    assert rows[0].params - plain.params == table
    assert rows[0].flops - plain.flops == 2 * 7 * 7 * (2 * m + 2 * m * m + m)
    quirk = one_block((8, 8), 64, partition="grid", window=4, rel_pos_bias="dynamic", bias_index="vit-pytorch")
    assert vitdsl.summary(quirk).rows[0].pattern == "grid 4×4, dynamic bias (vit-pytorch index)"


def test_rel_pos_bias_table_and_none():
    assert vitdsl.build(one_block((8, 8), 64, window=4, rel_pos_bias="table")).local_attn.rel_pos_bias is not None
    with pytest.raises(VitdslError, match="Input should be 'table', 'dynamic' or 'none'"):
        vitdsl.validate(one_block((8, 8), 64, window=4, rel_pos_bias=False))
    off = vitdsl.build(one_block((8, 8), 64, window=4, rel_pos_bias="none")).local_attn
    assert off.rel_pos_bias is None and off.rel_pos_mlp is None
    assert sum(p.numel() for p in off.parameters()) == 4 * 64 * 64 + 3 * 64 + 64 + 2 * 64  # qkv, out, norm


def test_bias_options_need_the_dynamic_bias():
    with pytest.raises(VitdslError) as e:
        vitdsl.validate(one_block((8, 8), 64, window=4, bias_hidden=8))
    assert "bias_hidden and bias_index are options of the dynamic bias: set rel_pos_bias: dynamic" in str(e.value)


def test_dynamic_bias_too_narrow_for_its_mlp():
    with pytest.raises(ShapeError) as e:
        vitdsl.validate(one_block((8, 8), 2, window=4, rel_pos_bias="dynamic", dim_head=1))
    assert e.value.message == ("the dynamic bias MLP of a width-2 map would have width 2 // 4 = 0 "
                               "(input here: image 2×8×8)")
    assert e.value.hint.startswith("set bias_hidden")


# -- scalar positions and patchify to a map -----------------------------------------------------
def test_scalar_positions_are_shared_by_the_windows():
    bp = vitdsl.Blueprint.model_validate({"name": "t", "input": {"image": [3, 4, 6]},
                                          "layers": [{"pos-embed": {"kind": "scalar", "windows": 2}}]})
    model = vitdsl.build(bp)
    assert vitdsl.summary(bp).rows[0].pattern == "scalar, one 2×3 table for 2×2 windows"
    with torch.no_grad():
        model.pos_embed.pos.copy_(torch.arange(6.0))
        out = model(torch.zeros(1, 3, 4, 6))
    window = torch.arange(6.0).view(2, 3)
    assert torch.equal(out[0, 2], torch.cat([torch.cat([window, window], 1)] * 2, 0))


def test_scalar_positions_on_tokens():
    bp = vitdsl.Blueprint.model_validate({"name": "t", "input": {"tokens": [5, 4]},
                                          "layers": [{"pos-embed": "scalar"}]})
    model = vitdsl.build(bp)
    x = torch.randn(2, 5, 4)
    assert sum(p.numel() for p in model.parameters()) == 5
    torch.testing.assert_close(model(x), x + model.pos_embed.pos[:, None])


def test_scalar_windows_must_tile_the_map():
    with pytest.raises(ShapeError) as e:
        vitdsl.validate("nest", overrides={"image_size": 200})
    assert e.value.path == "stages.0.pos"
    assert e.value.message == ("4 windows per side do not tile the feature map 50×50 (height 50) "
                               "(input here: image 96×50×50)")
    assert e.value.hint.startswith("window counts that fit 50×50: 1, 2, 5, 10, 25, 50; square input sizes that work")


def test_tables_for_tokens_refuse_a_map():
    bp = vitdsl.Blueprint.model_validate({"name": "t", "input": {"image": [3, 4, 4]},
                                          "layers": [{"pos-embed": "sincos2d"}]})
    with pytest.raises(ShapeError) as e:
        vitdsl.validate(bp)
    assert e.value.message.startswith("a sincos2d position table is for tokens, but a feature map reaches it")
    assert e.value.hint.startswith("use kind: learned or scalar on a feature map, or patchify it first")
    # a learned table on a map is one (C, H, W) table added to it (PiT's)
    bp = vitdsl.Blueprint.model_validate({"name": "t", "input": {"image": [3, 4, 4]},
                                          "layers": [{"pos-embed": "learned"}]})
    assert info(vitdsl.validate(bp))["params"] == 3 * 4 * 4
    with pytest.raises(VitdslError, match="windows is for kind: scalar, or learned with per_window, not learned "
                                          "without per_window"):
        vitdsl.Blueprint.model_validate({"name": "t", "input": {"tokens": [4, 4]},
                                         "layers": [{"pos-embed": {"kind": "learned", "windows": 2}}]}).resolve()


def test_patchify_to_a_map_holds_the_tokens():
    def bp(layout):
        return vitdsl.Blueprint.model_validate({"name": "t", "input": {"image": [3, 8, 12]}, "layers": [
            {"patchify": {"patch": 4, "dim": 5, "pre_norm": "layer", "layout": layout}}]})
    torch.manual_seed(0)
    tokens, grid = vitdsl.build(bp("tokens")), vitdsl.build(bp("map"))
    grid.load_state_dict(tokens.state_dict())
    x = torch.randn(2, 3, 8, 12)
    assert grid.output_shape == (5, 2, 3)
    torch.testing.assert_close(grid(x), tokens(x).transpose(1, 2).reshape(2, 5, 2, 3), rtol=0, atol=0)


# -- expressions ----------------------------------------------------------------------------------
def ev(text, **params):
    return evaluate(text, params.__getitem__, lambda: list(params))


def test_list_comprehensions_range_and_sorted():
    assert ev("${[d * 2 for d in dims if d > 1]}", dims=[1, 2, 3]) == [4, 6]
    assert ev("${sum([dim // 2 ** (i + 1) for i in range(3)])}", dim=100) == 50 + 25 + 12
    assert ev("${[i for i in range(2)] + [i]}", i=7) == [0, 1, 7]  # the loop name shadows only inside
    assert ev("${sorted(k)[0]}", k=[8, 4]) == 4


@pytest.mark.parametrize("text,message", [
    ("${[a for a, b in k]}", "'[a for a, b in k]' is not allowed"),
    ("${[a for a in k for b in k]}", "is not allowed"),
    ("${[a for a in n]}", "'n' is not a list"),
    ("${range(10 ** 9)}", "range(1000000000) has 1,000,000,000 numbers, more than 100,000"),
    ("${range(-2 ** 62, 2 ** 62)}", "range(-4611686018427387904, 4611686018427387904) has 2**63 or more numbers, "
                                   "more than 100,000"),
    ("${sorted(n)}", "cannot evaluate '${sorted(n)}'"),
])
def test_bad_comprehensions_and_calls(text, message):
    with pytest.raises(VitdslError, match=None) as e:
        ev(text, k=[1, 2], n=3)
    assert message in str(e.value)


def test_parallel_item_takes_merge_next_to_its_layers():
    bp = vitdsl.Blueprint.model_validate({"name": "t", "input": {"image": [3, 8, 8]}, "layers": [
        {"parallel": 3, "merge": "concat", "layers": [{"conv-stem": {"channels": ["${branch + 1}"]}}]}]})
    assert vitdsl.build(bp).output_shape == (6, 8, 8)


# -- the zoo blueprints ---------------------------------------------------------------------------
def test_cross_scale_embedding_splits_the_width():
    summary = vitdsl.summary("crossformer", overrides={"dims": [100, 128, 256, 512], "dim_head": 4})
    rows = {r.path: r for r in summary.rows}
    widths = [rows[f"stages.0.embed.{b}.conv"].output[0] for b in range(4)]
    kernels = [rows[f"stages.0.embed.{b}.conv"].params for b in range(4)]
    assert widths == [50, 25, 12, 13] and rows["stages.0.embed.merge"].output == (100, 56, 56)
    assert kernels == [w * 3 * k * k + w for w, k in zip(widths, (4, 8, 16, 32))]


def test_crossformer_window_that_does_not_fit():
    with pytest.raises(ShapeError) as e:
        vitdsl.validate("crossformer", overrides={"image_size": 192})
    assert e.value.path == "stages.0.blocks.0.short_attn"
    assert e.value.message == ("window 7 does not divide the feature map 48×48 (height 48) "
                               "(input here: image 64×48×48)")
    assert e.value.hint.startswith("windows that fit 48×48: 1, 2, 3, 4, 6, 8, 12, 16, 24, 48; square input sizes")


def test_summary_names_short_and_long_distance_patterns():
    rows = {r.path: r.pattern for r in vitdsl.summary("crossformer").rows}
    assert rows["stages.0.blocks.0.short_attn"] == "window 7×7, dynamic bias (vit-pytorch index)"
    assert rows["stages.0.blocks.0.long_attn"] == "grid 8×8, dynamic bias (vit-pytorch index)"
    nest = {r.path: r.pattern for r in vitdsl.summary("nest").rows}
    assert nest["stages.0.blocks.0.attn"] == "window 14×14" and nest["stages.2.blocks.0.attn"] == "window 14×14"
    assert nest["stages.0.pos"] == "scalar, one 14×14 table for 4×4 windows"


def test_nest_honours_its_own_dim_head():
    plain = vitdsl.build("nest", overrides={**SMALL["nest"]})
    wide = vitdsl.build("nest", overrides={**SMALL["nest"], "dim_head": 16})
    assert plain.block("stages.0.blocks.0.attn").qkv.weight.shape == (3 * 16, 16)  # width / heads = 8 per head
    assert wide.block("stages.0.blocks.0.attn").qkv.weight.shape == (3 * 2 * 16, 16)


@pytest.mark.parametrize("name", sorted(SMALL))
def test_small_builds_run_and_learn(name):
    torch.manual_seed(0)
    model = vitdsl.build(name, overrides=SMALL[name])
    x = torch.randn(2, *model.input_shape)
    loss = model(x).logsumexp(-1).mean()
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


@pytest.mark.parametrize("name,variant", [("crossformer", v) for v in ("small", "base", "large")]
                         + [("nest", v) for v in ("tiny", "small", "base")])
def test_paper_variants_validate(name, variant):
    assert vitdsl.summary(name, variant).total_params > 0
