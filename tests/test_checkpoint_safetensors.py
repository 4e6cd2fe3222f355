"""Checkpoints as safetensors files (the default): the record's fields and the blueprint in the metadata, a
tied tensor stored once and tied again on loading, every byte under the same SHA-256 as torch's format; the
file is one the ``safetensors`` library reads."""
import json

import pytest
import torch
from checkpoint_files import TINY

import vitdsl
from vitdsl import VitdslError
from vitdsl.checkpoint import fingerprint
from vitdsl.cli import main

safetensors = pytest.importorskip("safetensors.torch")

def error_of(path) -> VitdslError:
    with pytest.raises(VitdslError) as e:
        vitdsl.load_checkpoint(path)
    return e.value


TIED = """name: tied
input: {image: [3, 16, 16]}
layers:
  - patchify: {patch: 4, dim: 16}
  - mlp: {mult: 2}
    name: a
  - mlp: {mult: 2}
    share: a
  - pool: mean
  - head: {classes: 3}
"""


@pytest.fixture(scope="module")
def model():
    return vitdsl.build("vit", overrides=TINY, seed=0).eval()


def test_a_safetensors_checkpoint_round_trips_and_is_the_librarys_format(model, tmp_path):
    path = tmp_path / "m.safetensors"
    vitdsl.save(model, path)
    assert path.read_bytes()[:4] != b"PK\x03\x04"  # not torch's zip
    with safetensors.safe_open(str(path), "pt") as f:
        meta = f.metadata()
        assert set(f.keys()) == set(model.state_dict())
    assert (meta["format"], meta["format_version"], meta["vitdsl_version"]) == ("vitdsl-checkpoint", "1",
                                                                                vitdsl.__version__)
    assert json.loads(meta["blueprint"]) == model.blueprint.to_dict() and json.loads(meta["aliases"]) == {}
    assert meta["sha256"] == fingerprint(model.blueprint.to_dict(), model.state_dict())
    again = vitdsl.load_checkpoint(path).eval()
    x = torch.randn(2, *model.input_shape)
    assert torch.equal(again(x), model(x))
    vitdsl.save(model, tmp_path / "m.pt")  # torch's format by its suffix
    assert (tmp_path / "m.pt").read_bytes()[:4] == b"PK\x03\x04"


def test_a_tied_tensor_is_stored_once_and_tied_again(tmp_path):
    model = vitdsl.build(vitdsl.loads(TIED), seed=0)
    path = tmp_path / "t.safetensors"
    vitdsl.save(model, path)
    with safetensors.safe_open(str(path), "pt") as f:
        aliases = json.loads(f.metadata()["aliases"])
        stored = set(f.keys())
    assert aliases == {f"mlp.{k}": f"a.{k}" for k in ("norm.weight", "norm.bias", "fc1.weight", "fc1.bias",
                                                      "fc2.weight", "fc2.bias")}
    assert not stored & set(aliases)
    again = vitdsl.load_checkpoint(path)
    assert again.block("mlp").fc1.weight is again.block("a").fc1.weight
    assert all(torch.equal(a, b) for a, b in zip(again.state_dict().values(), model.state_dict().values()))


def test_a_changed_byte_or_blueprint_fails_the_hash(model, tmp_path):
    path = tmp_path / "m.safetensors"
    vitdsl.save(model, path)
    data = bytearray(path.read_bytes())
    data[-3] ^= 0xFF  # inside the last tensor's bytes
    path.write_bytes(bytes(data))
    assert error_of(path).message == f"checkpoint '{path}' is corrupt: its contents do not match the SHA-256 " \
                                     "recorded when it was saved"
    tensors = {k: v.contiguous() for k, v in model.state_dict().items()}
    with safetensors.safe_open(str(tmp_path / "m.safetensors"), "pt") as f:
        meta = f.metadata()
    blueprint = json.loads(meta["blueprint"])
    blueprint["params"]["classes"] = 11
    safetensors.save_file(tensors, str(path), metadata={**meta, "blueprint": json.dumps(blueprint)})
    assert "is corrupt" in error_of(path).message


def test_a_safetensors_file_of_weights_alone_is_not_a_checkpoint(model, tmp_path):
    path = tmp_path / "w.safetensors"
    safetensors.save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    e = error_of(path)
    assert e.message == (f"checkpoint '{path}' is a safetensors file of weights, without the blueprint a "
                         "checkpoint carries")
    assert e.hint.startswith("load weights into a blueprint with 'vitdsl build NAME --weights FILE'")


def test_the_command_line_saves_and_reads_safetensors(tmp_path, capsys):
    path = tmp_path / "v.safetensors"
    sets = [a for k, v in TINY.items() for a in ("--set", f"{k}={v}")]
    assert main(["build", "vit", *sets, "--seed", "0", "--save", str(path)]) == 0
    assert main(["summary", str(path)]) == 0
    assert "vit" in capsys.readouterr().out
