"""The two-pass search for the square input sizes a design takes (vitdsl.graph.sizes) against trying every
size through every check, as the graph builder makes them: the same sizes for every blueprint of the zoo,
its examples and designs made to reach each way a size can fail."""
from __future__ import annotations

from pathlib import Path

import pytest

import vitdsl
from vitdsl.blocks.base import REGISTRY, BlockSpec
from vitdsl.blocks.shape import CHANNELS_FIRST, Shape
from vitdsl.blueprint.expand import INPUT
from vitdsl.blueprint.load import zoo_names
from vitdsl.errors import ShapeError, VitdslError
from vitdsl.graph.rules import carry_groups, check_arity, check_kinds
from vitdsl.graph.sizes import compact, input_sizes, valid_input_sizes

ROOT = Path(__file__).resolve().parent.parent
LIMIT = 1024


def every_size(graph, limit: int = LIMIT) -> list[int]:
    """The reference, the search as it was: each size from 8 to ``limit`` through every block's checks,
    each block's answer for the same inputs looked up."""
    steps = [graph.nx.nodes[path]["node"] for path in graph.order]
    known: dict[tuple, Shape | None] = {}
    ok = []
    for s in range(8, limit + 1):
        out_of = {INPUT: Shape(graph.input.kind, (*graph.input.dims[:-2], s, s))}
        for node in steps:
            inputs = [out_of[p] for p in node.inputs]
            key = (node.path, *inputs)
            if key not in known:
                try:
                    check_arity(node)
                    check_kinds(graph.nx, node, inputs)
                    known[key] = carry_groups(node.spec, inputs)
                except VitdslError:
                    known[key] = None
            if known[key] is None:
                break
            out_of[node.path] = known[key]
        else:
            ok.append(s)
    return ok


def plain_graphs():
    for name in zoo_names(examples=True) + [str(p) for p in sorted((ROOT / "examples").glob("*.yaml"))]:
        checked = vitdsl.validate(name)
        if hasattr(checked, "encoder"):  # an objective: its encoder's graph
            checked = checked.encoder
        yield name, checked


# every size up to 1024 for these (strides, SAME and ceil rounding, windows, grids, merges, unfolding,
# volumes, pooled stems); the rest of the zoo up to 256, which keeps the file's time within bounds
FULL = {"maxvit", "swin", "vivit", "crossformer", "regionvit", "pvt_v2", "t2t_vit", "examples/twins_crossformer"}


def test_the_zoo_and_the_examples_take_the_sizes_every_size_tried_finds():
    seen = set()
    for name, graph in plain_graphs():
        if graph.input.kind not in CHANNELS_FIRST:
            assert valid_input_sizes(graph.nx, graph.order, graph.input) is None, name
            continue
        limit = LIMIT if name in FULL else 256
        assert input_sizes(graph.nx, graph.order, graph.input, limit) == every_size(graph, limit), name
        seen.add(name)
    assert FULL <= seen and len(seen) >= 45


def test_maxvit_line():
    graph = vitdsl.validate("maxvit")
    assert valid_input_sizes(graph.nx, graph.order, graph.input) == \
        "square input sizes that work (up to 1024): 221–224, 445–448, 669–672, 893–896"


def graph_of(write, text: str):
    return vitdsl.validate(write(text))


def test_sizes_refused_by_the_limits_alone(write):
    # the shape rules take every size; the attention's work passes 2**48 FLOPs from 171×171 on
    graph = graph_of(write, """\
name: t
input: {image: [3, 32, 32]}
layers:
  - patchify: {patch: 1, dim: 65536}
  - global-attn: {heads: 1}
  - pool: mean
""")
    sizes = input_sizes(graph.nx, graph.order, graph.input, limit=200)
    assert sizes == every_size(graph, limit=200)
    assert sizes[0] == 8 and 8 < sizes[-1] < 200 and sizes == list(range(8, sizes[-1] + 1))


BRANCHES = """\
name: t
input: {INPUT}
layers:
  - conv-stem: {channels: [8], kernel: 3, stride: 2, padding: 0, pool: 3, pool_stride: 2}
    name: stem
  - conv-stem: {channels: [8], kernel: 1, stride: 1}
    name: side
    from: stem
  - merge: add
    from: [stem, side]
"""


def test_volumes_with_frames_as_groups_and_branches(write):
    graph = graph_of(write, BRANCHES.replace("{INPUT}", "{volume: [3, 8, 51, 51]}") + """\
  - patchify: {patch: 4, dim: 16}
  - global-attn: {heads: 2}
  - pool: mean
""")
    sizes = input_sizes(graph.nx, graph.order, graph.input, limit=300)
    assert sizes == every_size(graph, limit=300)
    assert compact(sizes) == "19–22, 35–38, 51–54, 67–70, 83–86, 99–102, ..."


def test_windows_after_branches_and_same_padding(write):
    graph = graph_of(write, BRANCHES.replace("{INPUT}", "{image: [3, 51, 51]}") + """\
  - local-attn: {window: 3, dim_head: 8}
  - mbconv: {stride: 2, padding: same}
  - pool: mean
""")
    sizes = input_sizes(graph.nx, graph.order, graph.input, limit=300)
    assert sizes == every_size(graph, limit=300)
    assert compact(sizes) == "15–18, 27–30, 39–42, 51–54, 63–66, 75–78, ..."


class Picky(BlockSpec):
    """Takes every map by its shape rule, but counts no parameters for maps of 20 or 21 rows (a rule
    only the second pass asks), and breaks on 30 rows (a bug: raised, not refused)."""

    block = "test-picky-sizes"
    takes = ("image",)

    def count_params(self, x: Shape) -> int:
        if x.dims[1] in (20, 21):
            raise ShapeError("no parameters for 20 or 21 rows")
        return 0

    def infer(self, x: Shape) -> Shape:
        if x.dims[1] == 30:
            raise ZeroDivisionError("30 rows")
        return x


@pytest.fixture
def picky():
    vitdsl.register_block(Picky)
    yield Picky
    REGISTRY.pop(Picky.block)


def test_what_only_the_full_checks_refuse_and_a_block_that_breaks(write, picky):
    graph = graph_of(write, """\
name: t
input: {image: [3, 32, 32]}
layers:
  - conv-stem: {channels: [4], kernel: 2, stride: 2, padding: 0}
  - test-picky-sizes: {}
  - pool: mean
""")
    assert input_sizes(graph.nx, graph.order, graph.input, limit=59) == every_size(graph, limit=59) == \
        [s for s in range(8, 60) if s // 2 not in (20, 21)]
    with pytest.raises(ZeroDivisionError, match="30 rows"):
        every_size(graph, limit=61)
    with pytest.raises(ZeroDivisionError, match="30 rows"):
        input_sizes(graph.nx, graph.order, graph.input, limit=61)


def test_compact():
    assert compact(list(range(16, 1025, 16))) == "multiples of 16 from 16 to 1024"
    assert compact([221, 222, 223, 224, 445, 446, 447, 448]) == "221–224, 445–448"
    assert compact([1, 3, 5, 7, 9, 11, 13, 15]) == "1, 3, 5, 7, 9, 11, ..."
