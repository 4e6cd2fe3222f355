"""The objective format: loading, checking, errors, the command line and the summary (kind-independent)."""
import subprocess
import sys

import pytest

import vitdsl
from vitdsl import VitdslError
from vitdsl.blueprint.load import find, load, objective_names
from vitdsl.cli import main
from vitdsl.objectives.design import kinds
from vitdsl.objectives.summary import trace_objective

SMALL = ["--set", "encoder.image_size=32", "--set", "encoder.patch=8", "--set", "encoder.dim=32",
         "--set", "encoder.depth=1", "--set", "encoder.heads=2", "--set", "encoder.mlp=64",
         "--set", "decoder_dim=16", "--set", "decoder_depth=1"]

BASE = """
name: t
encoder: {blueprint: vit, set: {image_size: 32, patch: 8, dim: 32, depth: 1, heads: 2, mlp: 64}}
objective:
  mae: {masking_ratio: 0.5}
parts:
  decoder:
    input: {tokens: [$patches, 32]}
    layers:
      - head: {classes: $patch_values}
"""


def error(write, text):
    with pytest.raises(VitdslError) as e:
        vitdsl.validate(write(text))
    return e.value


def test_build_prints_encoder_parts_and_own_tensors(capsys):
    assert main(["build", "objectives/mae", *SMALL]) == 0
    out = capsys.readouterr().out
    assert "objective 'mae'" in out
    assert "not run by mae, so not built: tokens, pool, head" in out
    assert "part 'to_decoder'" in out and "part 'decoder'" in out
    assert "the objective's own tensors: mask_token 16 (16 parameters)" in out


def test_validate_lists_roles_and_parts(capsys):
    assert main(["validate", "objectives/mae", *SMALL]) == 0
    out = capsys.readouterr().out
    assert "body: blocks.0.attn … norm" in out
    assert "part decoder: tokens 16×16 → tokens 16×192" in out


def test_summary_json_has_every_network(capsys):
    import json

    assert main(["summary", "objectives/mae", *SMALL, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert set(data["parts"]) == {"to_decoder", "decoder"}
    assert data["not_run"] == ["tokens", "pool", "head"]


def test_an_inline_encoder_and_its_overrides(write):
    design = vitdsl.validate(write(BASE), overrides={"encoder.depth": 2})
    assert design.encoder.design.params["depth"] == 2
    assert design.values["patches"] == 16 and design.values["patch_values"] == 192


def test_unknown_objective(write):
    e = error(write, BASE.replace("mae: {masking_ratio: 0.5}", "mea: {masking_ratio: 0.5}"))
    assert e.message == "unknown objective 'mea'"
    assert e.hint.startswith("did you mean 'mae'?")
    assert e.location.line == 5


def test_unknown_setting(write):
    e = error(write, BASE.replace("masking_ratio: 0.5", "mask_ratio: 0.5"))
    assert e.message == "unknown setting 'mask_ratio' for objective 'mae'"
    assert e.hint.startswith("did you mean 'masking_ratio'?")


def test_setting_out_of_range(write):
    e = error(write, BASE.replace("masking_ratio: 0.5", "masking_ratio: 1.5"))
    assert e.message == "mae: masking_ratio: Input should be less than 1"


def test_missing_and_unknown_parts(write):
    e = error(write, BASE.replace("  decoder:", "  decodr:"))
    assert e.message == "objective 'mae' has no part 'decodr'"
    assert e.hint.startswith("did you mean 'decoder'?")
    e = error(write, BASE.split("parts:")[0])
    assert e.message.startswith("objective 'mae' needs part 'decoder': predicts the pixel values")


def test_a_part_error_names_the_part_and_its_line(write):
    e = error(write, BASE.replace("- head: {classes: $patch_values}", "- head: {classes: $patch_values, bais: true}"))
    assert e.path == "decoder.head"
    assert e.message == "unknown field 'bais' for block 'head'"
    assert e.location.line == 10


def test_an_unknown_encoder_parameter(write):
    e = error(write, BASE.replace("mlp: 64}", "mlp: 64, depht: 2}"))
    assert e.message == "cannot set 'depht': blueprint 'vit' has no such parameter"


def test_an_encoder_without_patchify(write):
    text = BASE.replace("blueprint: vit, set: {image_size: 32, patch: 8, dim: 32, depth: 1, heads: 2, mlp: 64}",
                        "blueprint: cct")
    e = error(write, text)
    assert e.message == ("mae: the patchify layer 'patchify' reads 'tokenizer' (conv-stem), not the images; masked "
                         "image objectives cut the images into patches themselves")


def test_a_value_name_taken_by_a_param(write):
    e = error(write, BASE + "params: {patches: 3}\n")
    assert e.message == "parameter 'patches' has the name of a value the mae objective gives its parts"


def test_build_takes_objective_arguments_only_for_objectives():
    with pytest.raises(VitdslError, match="build got teacher, which only objective blueprints take"):
        vitdsl.build("vit", teacher=object())


def test_every_objective_and_setting_is_described():
    offenders = [f"{name} (docstring)" for name, cls in kinds().items() if not (cls.__doc__ or "").strip()]
    offenders += [f"{name}.{field}" for name, cls in kinds().items()
                  for field, info in cls.model_fields.items() if not (info.description or "").strip()]
    offenders += [f"{name} part {p}" for name, cls in kinds().items() for p, what in cls.parts.items() if not what]
    assert not offenders


def test_the_encoder_segment_runs_alone():
    import torch

    model = vitdsl.build("vit", overrides=dict(image_size=32, patch=8, dim=32, depth=2, heads=2, mlp=64)).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        tokens = model.pos_embed(model.tokens(model.patchify(x)))
        assert torch.equal(model.run(tokens, "blocks.0.attn", "norm"), model.norm(model.blocks["1"].ff(
            model.blocks["1"].attn(model.blocks["0"].ff(model.blocks["0"].attn(tokens))))))
    with pytest.raises(VitdslError, match="take 2 inputs from outside"):
        vitdsl.build("cross_vit", overrides={"image_size": 64}).segment(
            "encoder.0.cross.0.branches.sm.cross_attn", "encoder.0.cross.0.branches.lg.cross_attn")


def test_a_misspelt_objective_name_gets_a_suggestion():
    with pytest.raises(VitdslError) as e:
        vitdsl.load("objectives/mea")
    assert e.value.message == "no blueprint 'objectives/mea': not a file and not in the zoo"
    assert e.value.hint.startswith("did you mean 'objectives/mae'?")


@pytest.mark.parametrize("name", __import__("vitdsl.blueprint.load", fromlist=["x"]).objective_names())
def test_part_rules_agree_with_the_built_parts(name):
    """Parameters and FLOPs of every part by the block rules equal those of the module traced on meta."""
    from vitdsl.graph.build import info
    from vitdsl.trace.summary import trace

    for part, graph in vitdsl.validate(name).parts.items():
        if graph is None:
            continue
        traced = trace(graph.design.blueprint)
        assert (info(graph)["params"], info(graph)["flops"]) == (traced.total_params, traced.total_flops), part


@pytest.mark.parametrize("name", objective_names())
def test_the_trained_parameters_counted_without_torch_are_the_traced_ones(name):
    """`vitdsl list` counts an objective's parameters from the shape rules (encoder layers it runs, parts, its
    own mask token); the meta-device trace of the built objective must find the same number."""
    design = load(find(name)).resolve()
    assert design.trained_params == trace_objective(design).total_params


def test_list_imports_no_torch():
    code = ("import contextlib, io, sys, vitdsl.cli\nwith contextlib.redirect_stdout(io.StringIO()) as out:\n"
            "    vitdsl.cli.main(['list'])\nassert 'objectives/mae' in out.getvalue()\nprint('torch' in sys.modules)")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.stdout == "False\n", run.stderr
