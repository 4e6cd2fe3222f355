"""The JSON Schema editors use (`vitdsl schema`, shipped as vitdsl/blueprint.schema.json): every YAML file of
the repository passes it, a wrong field is reported at that field, a blueprint that extends another may be
partial, and an input has exactly one kind."""
import copy
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml

from vitdsl.cli import main
from vitdsl.schema import SHIPPED, blueprint_schema

ROOT = Path(__file__).parents[1]
YAML = sorted(p for p in ROOT.glob("**/*.yaml") if not {".venv", ".git"} & set(p.relative_to(ROOT).parts))


@pytest.fixture(scope="module")
def check():
    schema = blueprint_schema()
    validator = jsonschema.validators.validator_for(schema)
    validator.check_schema(schema)  # once: jsonschema.validate checks the schema itself on every call (1.3 s each)
    checker = validator(schema)

    def first_error(doc):
        error = jsonschema.exceptions.best_match(checker.iter_errors(doc))
        return None if error is None else (list(error.absolute_path), error.message)
    return first_error


def test_every_yaml_file_of_the_repository_passes(check):
    assert len(YAML) > 55  # the zoo, its examples and objectives, the docs' examples
    failing = {str(p.relative_to(ROOT)): check(yaml.safe_load(p.read_text())) for p in YAML}
    assert not {k: v for k, v in failing.items() if v}


def test_the_shipped_file_is_what_vitdsl_schema_prints(capsys):
    # a fresh process: blocks other tests register would be in this one's schema
    run = subprocess.run([sys.executable, "-m", "vitdsl", "schema"], capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 0 and run.stdout == SHIPPED.read_text()
    assert main(["schema", "--path"]) == 0
    assert capsys.readouterr().out == f"{SHIPPED}\n"


VIT = yaml.safe_load((ROOT / "blueprints" / "vit.yaml").read_text())
CROSS = yaml.safe_load((ROOT / "blueprints" / "cross_vit.yaml").read_text())


def changed(doc, edit):
    doc = copy.deepcopy(doc)
    edit(doc)
    return doc


def test_a_wrong_field_is_reported_at_its_block(check):
    assert check(changed(VIT, lambda d: d["layers"][0]["patchify"].update(pach=3))) == (
        ["layers", 0, "patchify"], "Additional properties are not allowed ('pach' was unexpected)")
    # inside a repeat: the block's own field, not "the item matches none of the layer kinds"
    assert check(changed(VIT, lambda d: d["layers"][3]["layers"][0]["global-attn"].update(dim_hed=8))) == (
        ["layers", 3, "layers", 0, "global-attn"], "Additional properties are not allowed ('dim_hed' was unexpected)")
    assert check(changed(VIT, lambda d: d["layers"].append({"glob-attn": {}}))) == (
        ["layers", 7], "{'glob-attn': {}} is not valid under any of the given schemas")


def test_a_parallel_items_merge_is_its_mode_not_the_merge_block(check):
    merges = [item for item in yaml.safe_load(yaml.safe_dump(CROSS))["layers"][1]["layers"][1]["layers"]
              if "parallel" in item]
    assert merges and all(check({**VIT, "layers": [item]}) is None for item in merges)
    wrong = {**merges[0], "merge": "sum"}
    assert check({**VIT, "layers": [wrong]})[0] == ["layers", 0, "merge"]


def test_an_input_has_one_kind(check):
    assert check(changed(VIT, lambda d: d.update(input={"image": [3, 8, 8], "volume": [3, 2, 8, 8]})))[0] == ["input"]
    assert check(changed(VIT, lambda d: d.update(input={})))[0] == ["input"]


def test_a_blueprint_that_extends_another_restates_only_what_it_changes(check):
    assert check({"extends": "vit.yaml", "params": {"depth": 2}}) is None
    assert check({"name": "t", "layers": []}) == ([], "'input' is a required property")
