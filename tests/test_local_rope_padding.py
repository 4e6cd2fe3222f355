"""local-attn's two Swin-side options: ``rope`` (EVA-02's axial RoPE over a token's place in its window) and ``pad``
(Swin's zero padding of a map the window does not divide). RoPE in a window is the map's own RoPE: a whole-map
window is global-attn with rope, and shifted windows are the map's RoPE under the shift's mask. Padding after the
roll is timm's: a small Swin at image 256 (maps 64, 32, 16, 8 in 7×7 windows) equals timm's after the import."""
import re

import pytest
import torch
import yaml
from rules_check import assert_graph_agrees
from timm_oracle import TOLERANCE, count

import vitdsl
import vitdsl.interop.timm as vt
from vitdsl.blocks.attention.global_attn import GlobalAttn
from vitdsl.blocks.attention.local import LocalAttn
from vitdsl.blocks.modules.attention.rope import AxialRope
from vitdsl.blocks.shape import Shape
from vitdsl.errors import VitdslError

timm = pytest.importorskip("timm")


def _blueprint(layers, size=(16, 8, 8)):
    return vitdsl.loads(yaml.safe_dump({"name": "t", "input": {"image": [3, size[1] * 2, size[2] * 2]},
                                        "layers": [{"patchify": {"patch": 2, "dim": size[0], "layout": "map"}},
                                                   *layers]}))


def _patterns(graph):
    return [node.spec.pattern(*inputs) for node, inputs, _ in graph if node.spec.block == "local-attn"]


def test_a_window_over_the_whole_map_is_global_attention_with_rope():
    torch.manual_seed(0)
    local = LocalAttn(window=6, rope="axial", rel_pos_bias="none", dim_head=8).build(Shape.image(16, 6, 6)).eval()
    glob = GlobalAttn(heads=2, rope="axial").build(Shape.tokens(36, 16, grid=(6, 6))).eval()
    glob.load_state_dict(local.state_dict())
    x = torch.randn(2, 16, 6, 6)
    with torch.no_grad():
        want = glob(x.flatten(2).transpose(1, 2))
        got = local(x).flatten(2).transpose(1, 2)
        assert (got - want).abs().max() < 1e-6
        local.rope = None  # the rotation is there to see
        assert (local(x).flatten(2).transpose(1, 2) - want).abs().max() > 1e-2


def test_shifted_windows_with_rope_are_the_maps_rope_under_the_shifts_mask():
    """Two tokens of a shifted window may attend to each other where the roll kept their offset (the same pairs as
    Swin's mask); for those, their offset in the window is their offset on the map, so rotating by the position in
    the window is rotating by the position on the map: this reference rotates over the 8×8 map, never by window."""
    torch.manual_seed(0)
    h = w = 8
    local = LocalAttn(window=4, shift=2, rope="axial", rel_pos_bias="none", dim_head=8)
    local = local.build(Shape.image(16, h, w)).eval()
    x = torch.randn(1, 16, h, w)
    rows, cols = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    rolled = torch.stack([(rows - 2) % h, (cols - 2) % w]).flatten(1).T  # where the roll takes each token
    orig = torch.stack([rows, cols]).flatten(1).T
    window = rolled // 4
    same_window = (window[:, None] == window[None]).all(-1)
    kept = ((rolled[:, None] - rolled[None]) == (orig[:, None] - orig[None])).all(-1)
    with torch.no_grad():
        t = x.flatten(2).transpose(1, 2)
        q, k, v = local.qkv_heads(local.norm(t))
        rope = AxialRope(8, grid=(h, w), prefix=0, ref=None, theta=10000.0)
        logits = rope(q) @ rope(k).transpose(-1, -2) * 8 ** -0.5
        attn = logits.masked_fill(~(same_window & kept), float("-inf")).softmax(-1)
        want = t + local.merge(attn @ v)
        assert (local(x).flatten(2).transpose(1, 2) - want).abs().max() < 1e-5


def test_the_pattern_names_rope_and_padding():
    graph = vitdsl.validate(_blueprint([{"local-attn": {"window": 7, "shift": 3, "rope": "axial", "dim_head": 4}},
                                        {"local-attn": {"window": 7, "shift": 3, "pad": "after-roll",
                                                        "dim_head": 4}},
                                        {"patchify": {"patch": 2, "dim": 16, "layout": "map"}},
                                        {"local-attn": {"window": 7, "shift": 3, "pad": "after-roll",
                                                        "dim_head": 4}}], size=(16, 14, 14)))
    assert _patterns(graph) == ["shifted window 7×7, rope", "shifted window 7×7", "window 7×7"]
    graph = vitdsl.validate(_blueprint([{"local-attn": {"window": 7, "shift": 3, "pad": "after-roll",
                                                        "rope": "axial", "dim_head": 4}},
                                        {"patchify": {"patch": 2, "dim": 16, "layout": "map"}},
                                        {"local-attn": {"window": 7, "shift": 3, "pad": "before-roll",
                                                        "dim_head": 4}}], size=(16, 10, 10)))
    # 10×10 → 14×14 in 7×7 windows; then 5×5 → 7×7, shifted all the same (Swin's detection code)
    assert _patterns(graph) == ["shifted window 7×7, padded 10×10→14×14, rope", "shifted window 7×7, padded 5×5→7×7"]
    graph = vitdsl.validate(_blueprint([{"local-attn": {"window": 7, "shift": 3, "pad": "after-roll",
                                                        "dim_head": 4}}], size=(16, 5, 7)))
    assert _patterns(graph) == ["window 5×7"]  # timm: a side no longer than the window is one window, unshifted


@pytest.mark.parametrize("pad", ["after-roll", "before-roll"])
def test_the_padded_and_rotated_windows_agree_with_their_rules(pad):
    layers = [{"local-attn": {"window": 3, "shift": 1, "pad": pad, "rope": "axial", "dim_head": 4}},
              {"local-attn": {"window": 4, "pad": pad, "dim_head": 8, "norm": "post"}},
              {"local-attn": {"window": 2, "partition": "grid", "rope": "axial", "dim_head": 4}}]
    blueprint = _blueprint(layers, size=(16, 8, 10))
    assert_graph_agrees(vitdsl.validate(blueprint), vitdsl.build(blueprint).eval(), batch=2)


_SMALL_SWIN = dict(img_size=256, embed_dim=24, depths=(2, 2, 2, 2), num_heads=(1, 2, 4, 8))


@pytest.fixture(scope="module")
def padded_swin():
    """timm's Swin-T at image 256, narrowed (24 wide, heads 24 wide, two blocks a stage), weights drawn at random."""
    torch.manual_seed(0)
    ref = timm.create_model("swin_tiny_patch4_window7_224", **_SMALL_SWIN).eval()
    with torch.no_grad():
        for t in ref.state_dict().values():
            if t.is_floating_point():
                t.copy_(torch.randn_like(t) * 0.2)
    x = torch.randn(1, 3, 256, 256, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        return ref, x, ref(x)


def _ours(ref, pad):
    model = vitdsl.build("swin", "tiny", overrides={"image_size": 256, "dims": [24, 48, 96, 192],
                                                    "depths": [2, 2, 2, 2], "dim_head": 24, "pad": pad}).eval()
    assert count(model) == count(ref)
    assert set(vt.import_weights(model, ref)) >= set(ref.state_dict())
    return model


def test_swin_padded_after_the_roll_is_timms_at_image_256(padded_swin):
    ref, x, want = padded_swin
    # timm's shifted blocks: windows on the maps 64, 32, 16, 8 padded to 70, 35, 21, 14
    assert [layer.blocks[1].attn_mask.shape[0] for layer in ref.layers] == [100, 25, 9, 4]
    assert want.abs().max() > 1
    model = _ours(ref, "after-roll")
    assert model.block("stages.3.blocks.1.attn").shift == (3, 3)  # the 8×8 map: 7×7 windows on 14×14, shifted
    with torch.no_grad():
        assert (model(x) - want).abs().max() < TOLERANCE


def test_padding_before_the_roll_is_another_model(padded_swin):
    """Swin's detection code pads, then rolls: the padding moves to the seam, and the outputs differ from timm's."""
    ref, x, want = padded_swin
    with torch.no_grad():
        assert (_ours(ref, "before-roll")(x) - want).abs().max() > 100 * TOLERANCE


def _refusal(layer, size=(8, 10, 10)) -> VitdslError:
    with pytest.raises(VitdslError) as e:
        vitdsl.validate(_blueprint([layer], size))
    return e.value


@pytest.mark.parametrize("layer, message", [
    ({"local-attn": {"window": 4, "partition": "grid", "pad": "after-roll", "dim_head": 4}},
     "pad fills the map up to a multiple of block windows: set partition: block and a window, or drop pad"),
    ({"local-attn": {"window": None, "pad": "after-roll", "dim_head": 4}},
     "pad fills the map up to a multiple of block windows: set partition: block and a window, or drop pad"),
    ({"local-attn": {"window": 5, "value_conv": 3, "rope": "axial", "dim_head": 4}},
     "value_conv takes no rope and no pad"),
    ({"local-attn": {"window": 5, "rope": "axial", "heads": 4, "dim_head": None}},
     "rope splits each head into row and column pairs, so dim_head must be a multiple of 4, got 2"),
    ({"local-attn": {"window": 7, "shift": 7, "pad": "after-roll", "dim_head": 4}},
     "shift 7 must be smaller than the 7×7 window"),
    ({"cross-attn": {"rope": "axial"}}, "rope is an option of global-attn and local-attn, not of cross-attn"),
])
def test_what_is_refused(layer, message):
    assert re.search(re.escape(message), str(_refusal(layer)))


def test_a_window_that_does_not_divide_the_map_is_refused_unless_padded():
    e = _refusal({"local-attn": {"window": 7, "dim_head": 4}})
    vitdsl.validate(_blueprint([{"local-attn": {"window": 7, "dim_head": 4, "pad": "after-roll"}}], (8, 10, 10)))
    assert e.message.startswith("window 7 does not divide the feature map 10×10 (height 10)")
    assert e.hint.startswith("windows that fit 10×10: 1, 2, 5, 10; ")


def test_windows_take_axial_rope_only_and_its_first_coordinate():
    with pytest.raises(VitdslError) as e:
        LocalAttn(window=4, dim_head=8, rope="mixed").infer(Shape.image(32, 8, 8))
    assert e.value.message == ("rope: mixed learns one set of frequencies over a whole grid; local-attn takes "
                               "rope: axial")
    rows = LocalAttn(window=4, dim_head=8, rope="axial").window_rope(Shape.image(32, 8, 8))["rope"]
    columns = LocalAttn(window=4, dim_head=8, rope="axial", rope_first="column").window_rope(Shape.image(32, 8, 8))
    assert "columns_first" not in rows and columns["rope"]["columns_first"] is True
