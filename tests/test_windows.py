"""local-attn sized by a window count: rectangular windows, equivalence with a window side, errors."""
import pytest
import torch

import vitdsl
from vitdsl.errors import VitdslError

from vitdsl import validate


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
    assert vitdsl.summary(blueprint(partition=partition, windows=2)).rows[0].pattern == ("window" if partition == "block" else "grid") + " 4×6"


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
