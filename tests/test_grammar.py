"""The layer items' grammar is written once, as pydantic models (vitdsl.blueprint.items): the loader and
expander check items by them, `replace` keeps what they allow, and `vitdsl schema` is generated from
them — so the schema and the expander cannot disagree. Named parallel branches, `merge: none` and one
`from` per branch (what cross_vit's two streams are made of)."""
import jsonschema
import pytest
import yaml
from pydantic import Field

import vitdsl
from vitdsl import VitdslError
from vitdsl.blueprint import items
from vitdsl.blueprint.load import zoo_dir
from vitdsl.schema import blueprint_schema

KINDS = {"repeat": "repeat: $n", "stages": "stages: {d: [1]}", "parallel": "parallel: $n"}


def layer_schemas(schema):
    """The schema of each kind of layer item: the structure items by their own key, blocks by name."""
    out = {}
    for option in schema["$defs"]["layer"]["allOf"]:  # if the item has the key, then its schema
        item = schema["$defs"][option["then"]["$ref"].rsplit("/", 1)[-1]]
        kind = next(k for k in item["required"] if k != "layers")
        assert option["if"]["required"] == [kind]
        out[kind] = item
    return out


def test_the_schema_has_exactly_the_keys_of_the_models():
    schemas = layer_schemas(blueprint_schema())
    for kind, model in items.STRUCTURE.items():
        assert set(schemas[kind]["properties"]) == items.keys(model) == {kind, *items.ITEM_KEYS[kind]}
        assert set(schemas[kind]["required"]) == {kind, "layers"}
        for key, field in model.model_fields.items():
            assert schemas[kind]["properties"][field.alias or key]["description"] == field.description
    assert set(schemas["mlp"]["properties"]) == {"mlp", "name", "from", "when", "share"}
    assert schemas["parallel"]["properties"]["merge"]["anyOf"][0]["enum"] == ["add", "mean", "concat", "none"]
    assert schemas["repeat"]["properties"]["repeat"]["anyOf"][0] == {"type": "integer", "minimum": 0}
    assert schemas["parallel"]["properties"]["layers"]["items"] == {"$ref": "#/$defs/layer"}


def test_a_key_added_to_a_model_appears_in_the_schema(monkeypatch):
    class Noted(items.RepeatItem):
        note: str = Field("", description="a remark")

    monkeypatch.setitem(items.STRUCTURE, "repeat", Noted)
    props = layer_schemas(blueprint_schema())["repeat"]["properties"]
    assert props["note"] == {"default": "", "description": "a remark", "type": "string"}


def blueprint(item: str) -> str:
    lines = item.split("\n")
    body = "\n".join(["  - " + lines[0], *("    " + line for line in lines[1:])])
    return f"name: t\ninput: {{tokens: [4, 8]}}\nparams: {{n: 1}}\nlayers:\n{body}\n    layers:\n      - mlp: {{}}\n"


@pytest.mark.parametrize("kind", KINDS)
def test_the_expander_accepts_every_key_of_the_schema_and_no_other(kind):
    schema = layer_schemas(blueprint_schema())[kind]
    for key in set(schema["properties"]) - {kind, "layers"}:
        value = {"name": "x", "from": "input", "when": True, "merge": "add", "residual": False,
                 "layer_dropout": 0.0}[key]
        bp = vitdsl.loads(blueprint(f"{KINDS[kind]}\n{key}: {yaml.safe_dump(value).splitlines()[0]}"))
        vitdsl.validate(bp)
    with pytest.raises(VitdslError) as e:
        vitdsl.loads(blueprint(f"{KINDS[kind]}\nnote: 1"))
    assert e.value.message == f"unknown key 'note' next to '{kind}'"
    assert e.value.hint == "keys allowed here: " + ", ".join(sorted(schema["properties"]))


def test_a_block_item_accepts_the_keys_of_the_schema():
    schema = layer_schemas(blueprint_schema())["mlp"]
    text = "name: t\ninput: {tokens: [4, 8]}\nlayers:\n  - mlp: {}\n    name: a\n"
    for key, value in {"name": "b", "from": "a", "when": True, "share": "a"}.items():
        assert key in schema["properties"]
        vitdsl.validate(vitdsl.loads(text + f"  - mlp: {{}}\n    {key}: {value}\n"))
    with pytest.raises(VitdslError) as e:
        vitdsl.loads(text + "  - mlp: {}\n    layer_dropout: 0.1\n")
    assert e.value.message == "'layer_dropout' is not allowed next to 'mlp'"
    assert e.value.hint == "keys allowed here: " + ", ".join(sorted(schema["properties"]))


def test_a_value_breaks_the_same_rule_written_or_computed(tmp_path):
    """One rule per key: a literal and a $reference that evaluates to the same value fail alike."""
    for literal, computed in [("repeat: -1", "repeat: $n"), ("parallel: 0", "parallel: $n")]:
        messages = []
        for text in (blueprint(literal), blueprint(computed).replace("{n: 1}", "{n: %s}" % literal.split()[-1])):
            path = tmp_path / "bp.yaml"
            path.write_text(text)
            with pytest.raises(VitdslError) as e:
                vitdsl.validate(str(path))
            messages.append((e.value.message, str(e.value.location)))
        kind = literal.split(":")[0]
        minimum = 0 if kind == "repeat" else 1
        want = f"{kind} takes a whole number ≥ {minimum}, got {literal.split()[-1]}"
        assert messages == [(want, f"{path}:5:{len('  - ' + kind + ': ') + 1}")] * 2


def test_a_rules_hint_reaches_the_error():
    with pytest.raises(VitdslError) as e:
        vitdsl.validate(vitdsl.loads(blueprint("stages: {d: 3}")))
    assert e.value.message == "stages needs lists of one length (d: not a list)"
    with pytest.raises(VitdslError) as e:
        vitdsl.validate(vitdsl.loads(blueprint("stages: $n")))
    assert e.value.message == "stages takes a mapping of parameter name to a list, one value per stage"
    assert e.value.hint == "e.g. stages: {dim: $dims, depth: $depths}"


STREAMS = """\
name: two
input: {tokens: [4, 8]}
params: {streams: [a, b], hidden: [16, 32]}
layers:
  - parallel: $streams
    name: embed
    merge: none
    layers:
      - mlp: {hidden: "${hidden[branch]}"}
  - parallel: $streams
    from: $streams
    merge: none
    layers:
      - mlp: {}
        from: ["${streams[1 - branch]}"]
  - parallel: [a, b]
    name: out
    from: [b, a]
    layers:
      - norm: layer
"""


def test_named_branches_are_streams():
    design = vitdsl.loads(STREAMS).resolve()
    inputs = {n.path: n.inputs for n in design.nodes}
    assert inputs == {
        "embed.a.mlp": ["input"], "embed.b.mlp": ["input"],
        # a branch reads what was there before the item: b's `from: a` is embed.a, not branches.a
        "branches.a.mlp": ["embed.b.mlp"], "branches.b.mlp": ["embed.a.mlp"],
        "out.a.norm": ["branches.b.mlp"], "out.b.norm": ["branches.a.mlp"],
        "out.merge": ["out.a.norm", "out.b.norm"]}
    assert design.nodes[0].spec.hidden == 16 and design.nodes[1].spec.hidden == 32
    model = vitdsl.build(vitdsl.loads(STREAMS))
    assert "embed.b.mlp.fc1.weight" in model.state_dict()


def test_merge_none_passes_the_last_branch_on():
    text = STREAMS.split("  - parallel: $streams\n    from")[0] + "  - norm: layer\n"
    inputs = {n.path: n.inputs for n in vitdsl.loads(text).resolve().nodes}
    assert inputs["norm"] == ["embed.b.mlp"]


@pytest.mark.parametrize("change,message", [
    (("parallel: [a, b]", "parallel: [a, a]"), "parallel names a branch twice: ['a', 'a']"),
    (("parallel: [a, b]", "parallel: [a, 2b]"), "name '2b' is not a valid identifier"),
    (("streams: [a, b]", "streams: [a, training]"), "'training' cannot name a layer: "),
    (("from: [b, a]", "from: [b, a, a]"), "'from' on a parallel item takes one name or one per branch (2), got 3"),
    (("    from: [b, a]\n", "    from: [b, a]\n    residual: true\n"), "residual adds the one input to the merge"),
    (("    name: embed\n    merge: none", "    name: embed\n    merge: sum"),
     "merge takes add, mean, concat or none, got 'sum'"),
])
def test_parallel_mistakes_are_clear(change, message):
    with pytest.raises(VitdslError) as e:
        vitdsl.validate(vitdsl.loads(STREAMS.replace(*change)))
    assert e.value.message.startswith(message)


def test_replace_keeps_what_the_models_allow():
    text = "name: t\ninput: {tokens: [4, 8]}\nlayers:\n  - mlp: {}\n    name: a\n  - mlp: {}\n    name: b\n" \
           "    share: a\n"
    bp = vitdsl.load(vitdsl.loads(text), replace={"b": {"repeat": 2, "layers": [{"mlp": {}}]}})
    assert bp.layers[1] == {"repeat": 2, "layers": [{"mlp": {}}], "name": "b"}  # a repeat cannot share
    bp = vitdsl.load(vitdsl.loads(text), replace={"b": {"norm": "layer"}})
    assert bp.layers[1] == {"norm": "layer", "name": "b", "share": "a"}


def test_the_rewritten_streams_validate_against_the_schema():
    schema = blueprint_schema()
    for name in ("cross_vit", "vivit"):
        jsonschema.validate(yaml.safe_load((zoo_dir() / f"{name}.yaml").read_text()), schema)
