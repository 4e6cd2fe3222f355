"""local-attn sized by a window count: rectangular windows, equivalence with a window side, errors."""
import pytest
import torch

import vitdsl
from vitdsl import validate
from vitdsl.errors import VitdslError


def blueprint(size=(8, 12), **opts):
    return vitdsl.Blueprint.model_validate({"name": "w", "input": {"image": [8, *size]},
                                            "layers": [{"local-attn": {"dim_head": 4, **opts}}]})


def fails(path):
    with pytest.raises(VitdslError) as e:
        validate(str(path))
    return e.value


@pytest.mark.parametrize("partition", ["block", "grid"])
def test_window_count_equals_the_window_side_it_implies(partition):
    torch.manual_seed(0)
    by_count = vitdsl.build(blueprint(partition=partition, windows=2)).eval()
    by_side = vitdsl.build(blueprint((8, 8), partition=partition, window=4)).eval()
    x = torch.randn(2, 8, 8, 8)
    square = vitdsl.build(blueprint((8, 8), partition=partition, windows=2)).eval()
    square.load_state_dict(by_side.state_dict())
    torch.testing.assert_close(square(x), by_side(x), rtol=0, atol=0)
    # on an 8×12 map, two windows per side are 4×6 windows with a (7·11)-row bias table
    assert by_count.local_attn.rel_pos_bias.weight.shape == (7 * 11, 2)
    assert by_count(torch.randn(2, 8, 8, 12)).shape == (2, 8, 8, 12)
    assert (vitdsl.summary(blueprint(partition=partition, windows=2)).rows[0].pattern
            == ("window" if partition == "block" else "grid") + " 4×6")


def test_window_count_must_tile_the_map(write):
    path = write("""\
name: t
input: {image: [8, 12, 12]}
layers:
  - local-attn: {windows: 5, dim_head: 4}
""")
    e = fails(path)
    assert e.message == "5 windows per side do not tile the feature map 12×12 (height 12) (input here: image 8×12×12)"
    assert e.hint.startswith("window counts that fit 12×12: 1, 2, 3, 4, 6, 12; square input sizes that work")


def test_window_and_window_count_exclude_each_other():
    with pytest.raises(VitdslError, match="set window .* or windows .*, not both"):
        validate(blueprint(window=4, windows=2))


def test_qk_norm_and_scale_are_options_of_every_attention_block():
    bp = blueprint(windows=2, qk_norm=True, scale=1.0)
    model = vitdsl.build(bp).eval()
    attn = model.local_attn
    assert attn.scale == 1.0 and attn.q_norm.weight.shape == (2, 1, 4)
    assert vitdsl.summary(bp).total_params == sum(p.numel() for p in model.parameters())
    x = torch.randn(1, 8, 8, 12)
    plain = vitdsl.build(blueprint(windows=2, scale=1.0)).eval()
    plain.load_state_dict(model.state_dict(), strict=False)
    with torch.no_grad():
        attn.q_norm.weight.mul_(2.0)  # the learned gain changes the logits, so the norm is really applied
        assert not torch.allclose(model(x), plain(x))
