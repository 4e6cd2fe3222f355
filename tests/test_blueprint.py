"""The blueprint format: params, expressions, repeat and stages, naming, extends, variants, overrides,
round trips and blueprints built in Python."""
import pytest

import vitdsl
from vitdsl import Blueprint, VitdslError, load, loads
from vitdsl.blueprint.expr import resolve_params
from vitdsl.blueprint.load import zoo_names

TINY = """\
name: tiny
input: {image: [3, 32, 32]}
params: {dim: 64, depth: 2, mlp: "${dim * 2}", classes: 10}
variants:
  wide: {dim: 128}
layers:
  - patchify: {patch: 8, dim: $dim}
  - tokens: 1
  - pos-embed: learned
  - repeat: $depth
    layers:
      - global-attn: {heads: 4}
        name: attn
      - mlp: {hidden: $mlp}
        name: ff
  - norm: layer
  - pool: cls
  - head: $classes
"""


def paths(bp, **kw):
    return [n.path for n in bp.resolve(**kw).nodes]


def test_paths_follow_names_and_repeats():
    bp = loads(TINY)
    assert paths(bp) == ["patchify", "tokens", "pos_embed", "blocks.0.attn", "blocks.0.ff", "blocks.1.attn",
                         "blocks.1.ff", "norm", "pool", "head"]


def test_unnamed_duplicates_are_numbered():
    bp = loads("name: t\ninput: {tokens: [4, 8]}\nlayers: [{mlp: {}}, {mlp: {}}, {norm: layer}]\n")
    assert paths(bp) == ["mlp_0", "mlp_1", "norm"]


def test_params_can_refer_to_each_other_and_expressions_evaluate():
    bp = loads(TINY)
    design = bp.resolve()
    assert design.params["mlp"] == 128
    assert design.node("blocks.0.ff").spec.hidden == 128
    assert resolve_params({"a": "${b + 1}", "b": "${max(c, 3) * 2}", "c": 1}) == {"a": 7, "b": 6, "c": 1}
    with pytest.raises(VitdslError, match="parameters refer to each other in a cycle: a -> b -> a"):
        resolve_params({"a": "$b", "b": "$a"})


def test_variant_and_overrides_land_in_params():
    bp = load(loads(TINY), variant="wide", overrides={"classes": 3})
    assert bp.params["dim"] == 128 and bp.params["classes"] == 3
    graph = vitdsl.validate(bp)
    assert graph.output.dims == (3,)
    assert graph.shape("blocks.1.ff").dims == (17, 128)
    assert graph.design.node("blocks.0.ff").spec.hidden == 256  # mlp follows dim


def test_stages_bind_one_value_per_stage_and_index():
    bp = loads("""\
name: s
input: {image: [3, 64, 64]}
params: {dims: [8, 16, 32], depths: [1, 2, 1]}
layers:
  - stages: {dim: $dims, depth: $depths}
    layers:
      - repeat: $depth
        layers:
          - mbconv: {dim: $dim, stride: "${2 if index == 0 else 1}", se: 0}
""")
    design = bp.resolve()
    assert [n.path for n in design.nodes] == ["stages.0.blocks.0.mbconv", "stages.1.blocks.0.mbconv",
                                              "stages.1.blocks.1.mbconv", "stages.2.blocks.0.mbconv"]
    assert [n.spec.stride for n in design.nodes] == [2, 2, 1, 2]
    assert vitdsl.validate(bp).output.dims == (32, 8, 8)


def test_branches_with_from_and_merge():
    bp = loads("""\
name: b
input: {image: [3, 32, 32]}
layers:
  - patchify: {patch: 8, dim: 32}
    name: embed
  - mlp: {mult: 2}
    name: left
  - mlp: {mult: 3}
    name: right
    from: embed
  - merge: concat
    from: [left, right]
  - pool: mean
""")
    graph = vitdsl.validate(bp)
    assert graph.design.node("merge").inputs == ["left", "right"]
    assert graph.output.dims == (64,)
    import torch

    model = vitdsl.build(bp)
    assert model.chain is None
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 64)


def test_round_trip_load_dump_load():
    for name in zoo_names():
        bp = load(name)
        again = loads(bp.dump())
        assert again == bp
        assert again.dump() == bp.dump()


def test_blueprint_built_in_python_equals_yaml():
    from vitdsl.blocks.attention import GlobalAttn
    from vitdsl.blocks.mlp import MLP

    bp = Blueprint(
        name="tiny", input={"image": [3, 32, 32]},
        params={"dim": 64, "depth": 2, "mlp": "${dim * 2}", "classes": 10}, variants={"wide": {"dim": 128}},
        layers=[{"patchify": {"patch": 8, "dim": "$dim"}}, {"tokens": 1}, {"pos-embed": "learned"},
                {"repeat": "$depth", "layers": [{"global-attn": GlobalAttn(heads=4), "name": "attn"},
                                                {"mlp": {"hidden": "$mlp"}, "name": "ff"}]},
                {"norm": "layer"}, {"pool": "cls"}, {"head": "$classes"}])
    yaml_bp = loads(TINY)
    assert [n.spec for n in bp.resolve().nodes] == [n.spec for n in yaml_bp.resolve().nodes]
    assert MLP(hidden=5).to_item() == {"mlp": {"hidden": 5}}


def test_extends_merges_mappings_and_replaces_lists(write):
    write(TINY, "base.yaml")
    child = write("""\
extends: base.yaml
name: child
params: {depth: 3}
variants:
  wide: {classes: 5}
""", "child.yaml")
    bp = load(str(child))
    assert bp.name == "child"
    assert bp.params == {"dim": 64, "depth": 3, "mlp": "${dim * 2}", "classes": 10}
    assert bp.variants["wide"] == {"dim": 128, "classes": 5}
    assert len(bp.resolve().nodes) == 12
    replaced = write("extends: base.yaml\nlayers:\n  - patchify: {patch: 4, dim: 8}\n", "other.yaml")
    assert paths(load(str(replaced))) == ["patchify"]


def test_extends_by_zoo_name_and_error_locations_point_into_the_right_file(write):
    child = write("extends: vit\nname: vit_tiny\nparams: {dim: 192, heads: 3, dim_head: 63}\n")
    bp = load(str(child))
    assert vitdsl.validate(bp).shape("blocks.0.attn").dims == (65, 192)
    bad = write("extends: vit\nname: vit_bad\nparams: {patch: 30}\n", "bad.yaml")
    with pytest.raises(VitdslError) as e:
        vitdsl.validate(str(bad))
    assert str(e.value.location).endswith("blueprints/vit.yaml:35:15")  # the patchify line of the base file
    assert e.value.message.startswith("image height 256 is not divisible by the patch height 30")


def test_extends_cycle_is_an_error(write):
    write("extends: b.yaml\nname: a\n", "a.yaml")
    b = write("extends: a.yaml\nname: b\n", "b.yaml")
    with pytest.raises(VitdslError, match="'extends' forms a cycle"):
        load(str(b))


def test_saved_checkpoint_carries_its_blueprint(tmp_path):
    import torch

    model = vitdsl.build("vit", overrides={"depth": 1, "dim": 64, "heads": 2, "mlp": 64, "image_size": 64})
    vitdsl.save(model, tmp_path / "m.pt")
    again = vitdsl.load_checkpoint(tmp_path / "m.pt")
    assert again.blueprint == model.blueprint
    x = torch.randn(1, 3, 64, 64)
    model.eval(), again.eval()
    assert torch.equal(model(x), again(x))


def test_merge_add_sums_the_branches_exactly():
    import torch

    bp = loads("""\
name: m
input: {tokens: [5, 16]}
layers:
  - norm: layer
    name: stem
  - mlp: {mult: 2, residual: false}
    name: left
  - mlp: {mult: 3, norm: none}
    name: right
    from: stem
  - merge: add
    from: [left, right, stem]
""")
    model = vitdsl.build(bp).eval()
    x = torch.randn(2, 5, 16)
    with torch.no_grad():
        s = model.stem(x)
        expected = model.left(s) + model.right(s) + s
        assert torch.equal(model(x), expected)
    assert sum(p.numel() for p in model.parameters()) == 32 + (2 * 16 + 16 * 32 + 32 + 32 * 16 + 16) \
        + (16 * 48 + 48 + 48 * 16 + 16)
