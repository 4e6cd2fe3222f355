"""Checkpoints: a good one round-trips exactly; every way a file can be wrong (missing, cut off,
damaged, foreign, newer, mismatched) is one VitdslError naming the file. Hostile files:
test_checkpoint_hostile.py."""
import argparse
import io
import os
import zipfile

import pytest
import torch
from checkpoint_files import SAVE_HINT, TINY, data_offset, error_of, flip, record

import vitdsl
from vitdsl import VitdslError
from vitdsl.checkpoint import UnverifiedCheckpoint, fingerprint
from vitdsl.cli import main


def test_save_writes_the_marker_the_version_and_the_hash(model, saved):
    data = torch.load(saved, weights_only=True)
    assert sorted(data) == ["blueprint", "format", "format_version", "sha256", "state_dict", "vitdsl_version"]
    assert ((data["format"], data["format_version"], data["vitdsl_version"])
            == ("vitdsl-checkpoint", 1, vitdsl.__version__))
    assert data["sha256"] == fingerprint(model.blueprint.to_dict(), model.state_dict())
    assert len(data["sha256"]) == 64
    assert [p.name for p in saved.parent.iterdir()] == ["m.pt"]  # no temporary file left behind
    umask = os.umask(0o022)
    os.umask(umask)
    assert saved.stat().st_mode & 0o777 == 0o666 & ~umask  # as torch.save's own file would be


def test_a_checkpoint_round_trips_exactly(model, saved):
    again = vitdsl.load_checkpoint(saved)
    assert again.blueprint == model.blueprint
    assert again.state_dict().keys() == model.state_dict().keys()
    assert all(torch.equal(a, b) for a, b in zip(again.state_dict().values(), model.state_dict().values()))


def test_the_hash_follows_every_byte_dtype_and_shape():
    sd = {"a": torch.arange(6, dtype=torch.float32), "b": torch.ones(2, dtype=torch.bfloat16)}
    base = fingerprint({"name": "x"}, sd)
    assert fingerprint({"name": "x"}, dict(reversed(sd.items()))) == base  # key order does not matter
    assert fingerprint({"name": "y"}, sd) != base
    assert fingerprint({"name": "x"}, {**sd, "a": sd["a"].view(2, 3)}) != base
    assert fingerprint({"name": "x"}, {**sd, "a": sd["a"].to(torch.float64)}) != base
    changed = sd["a"].clone()
    changed[5] = 5.000001
    assert fingerprint({"name": "x"}, {**sd, "a": changed}) != base


def test_tied_weights_hash_the_same_after_loading(tmp_path):
    """One tensor under two keys is stored once; loading gives it back shared, and the hash agrees."""
    w = torch.randn(4, 4)
    sd = {"a.weight": w, "b.weight": w, "c.weight": w[1:3]}
    torch.save(sd, tmp_path / "t.pt")
    back = torch.load(tmp_path / "t.pt", weights_only=True)
    assert back["a.weight"].data_ptr() == back["b.weight"].data_ptr()
    assert fingerprint({}, back) == fingerprint({}, sd)


def test_a_missing_file(tmp_path):
    assert error_of(tmp_path / "nope.pt") == f"checkpoint '{tmp_path / 'nope.pt'}' does not exist"


def test_an_empty_file(tmp_path):
    (tmp_path / "e.pt").write_bytes(b"")
    assert error_of(tmp_path / "e.pt") == (f"checkpoint '{tmp_path / 'e.pt'}' is empty\n"
                                           "  hint: it was probably cut off while being written; save it again")


@pytest.mark.parametrize("keep", [0.5, 0.99])
def test_a_truncated_file(saved, keep):
    raw = saved.read_bytes()
    saved.write_bytes(raw[:int(len(raw) * keep)])
    assert error_of(saved) == (f"checkpoint '{saved}' is truncated or damaged: it is not a complete zip archive\n"
                               "  hint: it was probably cut off while being copied or written; restore it or "
                               "save it again")


def test_flipped_bytes_in_the_weights_are_caught_by_the_hash(saved):
    start, size = max((data_offset(saved, f"data/{i}") for i in range(3)), key=lambda o: o[1])
    flip(saved, start + size // 2)
    assert len(torch.load(saved, weights_only=True)["state_dict"]) > 0  # torch itself notices nothing
    assert error_of(saved) == (f"checkpoint '{saved}' is corrupt: its contents do not match the SHA-256 "
                               "recorded when it was saved\n"
                               "  hint: the file was damaged or changed after saving; restore it from a good copy")


def test_flipped_bytes_in_the_pickle_are_caught_by_its_crc(saved):
    start, size = data_offset(saved, "data.pkl")
    flip(saved, start + 40)
    assert error_of(saved) == (f"checkpoint '{saved}' is damaged: a CRC check of its contents failed\n"
                               "  hint: restore it from a good copy, or save it again")


def test_a_tensor_changed_after_saving_fails_the_hash(model, saved):
    data = torch.load(saved, weights_only=True)
    data["state_dict"]["head.fc.bias"][0] += 1
    torch.save(data, saved)
    assert "is corrupt: its contents do not match the SHA-256 recorded when it was saved" in error_of(saved)


def test_a_blueprint_changed_after_saving_fails_the_hash(model, saved):
    data = torch.load(saved, weights_only=True)
    data["blueprint"]["params"]["dropout"] = 0.5
    torch.save(data, saved)
    assert "is corrupt" in error_of(saved)


def test_a_plain_state_dict(model, tmp_path):
    torch.save(model.state_dict(), tmp_path / "sd.pt")
    assert error_of(tmp_path / "sd.pt") == (
        f"checkpoint '{tmp_path / 'sd.pt'}' is a plain state_dict (23 tensors, e.g. 'patchify.pre_norm.weight'), "
        "not a vitdsl checkpoint: it has no blueprint to rebuild the model from\n"
        "  hint: build the model from its blueprint, then model.load_state_dict(torch.load(file)); for "
        "vit-pytorch weights see vitdsl.interop")


def test_a_timm_style_checkpoint(model, tmp_path):
    torch.save({"state_dict": model.state_dict(), "epoch": 3, "arch": "vit_tiny"}, tmp_path / "t.pt")
    assert error_of(tmp_path / "t.pt") == (
        f"checkpoint '{tmp_path / 't.pt'}' is not a vitdsl checkpoint: a dict with the keys 'state_dict', 'epoch', "
        f"'arch', without 'format' and 'blueprint'\n  hint: {SAVE_HINT}")


def test_a_checkpoint_holding_python_objects_is_refused(model, tmp_path):
    """timm's training checkpoints carry the argparse Namespace; unpickling it could as well run code."""
    torch.save({"state_dict": model.state_dict(), "args": argparse.Namespace(lr=0.1)}, tmp_path / "t.pt")
    torch.save({"cmd": os.system}, tmp_path / "p.pt")
    for name in ("t.pt", "p.pt"):
        assert error_of(tmp_path / name) == (
            f"checkpoint '{tmp_path / name}' is not a vitdsl checkpoint: it holds Python objects other than "
            "tensors and plain data, which vitdsl refuses to unpickle (they could run code)\n"
            f"  hint: {SAVE_HINT}")


@pytest.mark.parametrize("content", [b"name: vit\nlayers: []\n", os.urandom(4096).replace(b"PK", b"pk")[:4096],
                                     b"\x00" * 100], ids=["text", "random", "zeros"])
def test_a_file_that_is_neither_zip_nor_pickle(tmp_path, content):
    path = tmp_path / "x.pt"
    path.write_bytes(b"\x01" + content)  # never a pickle's \x80 nor the zip's PK
    assert error_of(path) == (f"checkpoint '{path}' is not a vitdsl checkpoint: it is neither a zip archive nor "
                              f"a pickle (what torch.save writes)\n  hint: {SAVE_HINT}")


def test_other_torch_files(tmp_path):
    torch.save([torch.ones(1)], tmp_path / "l.pt")
    assert error_of(tmp_path / "l.pt") == (f"checkpoint '{tmp_path / 'l.pt'}' is not a vitdsl checkpoint: it holds "
                                           f"a list, not a dict\n  hint: {SAVE_HINT}")
    raw = io.BytesIO()
    with zipfile.ZipFile(raw, "w") as z:
        z.writestr("readme.txt", "hello")
    (tmp_path / "z.pt").write_bytes(raw.getvalue())
    assert error_of(tmp_path / "z.pt") == (f"checkpoint '{tmp_path / 'z.pt'}' is not a vitdsl checkpoint: a zip "
                                           f"archive without the data.pkl that torch.save writes\n  hint: {SAVE_HINT}")


def test_a_newer_format_is_refused_with_the_versions(model, tmp_path):
    torch.save(record(model, format_version=2, vitdsl_version="9.0"), tmp_path / "n.pt")
    assert error_of(tmp_path / "n.pt") == (
        f"checkpoint '{tmp_path / 'n.pt'}' was written in checkpoint format 2 (by vitdsl 9.0); this vitdsl "
        f"({vitdsl.__version__}) reads format 1 and older\n  hint: upgrade vitdsl to load it")


@pytest.mark.parametrize("changes, message", [
    ({"format_version": "1"}, "has an invalid format_version '1'"),
    ({"format_version": [[0] * 10] * 10}, "has an invalid format_version <a list>"),
    ({"format_version": 10**50, "vitdsl_version": "9" * 100},
     f"was written in checkpoint format <a int> (by vitdsl <a str>); this vitdsl ({vitdsl.__version__}) reads "
     "format 1 and older"),
    ({"sha256": None}, "is corrupt: its contents do not match the SHA-256 recorded when it was saved"),
    ({"state_dict": {"a": [1.0]}}, "has a state_dict that is not a mapping of names to (dense) tensors"),
    ({"state_dict": {"a": torch.eye(2).to_sparse()}},
     "has a state_dict that is not a mapping of names to (dense) tensors"),
    ({"state_dict": {"a": torch.zeros(1).expand(10**12), "b": torch.ones(3)}},
     "has tensors larger than the data stored for them: a"),
    ({"blueprint": ["vit"]}, "has a blueprint that is a list, not a mapping"),
    ({"blueprint": {"name": "x", "params": {1: 2, "a": 3}}},
     "cannot be hashed (TypeError: '<' not supported between instances of 'str' and 'int')"),
    ({"blueprint": {"name": "x", "params": torch.ones(1)}}, "has a blueprint holding a Tensor"),
])
def test_malformed_entries(model, tmp_path, changes, message):
    data = record(model)
    data.update(changes)
    torch.save(data, tmp_path / "b.pt")
    assert error_of(tmp_path / "b.pt").splitlines()[0] == f"checkpoint '{tmp_path / 'b.pt'}' {message}"


def test_an_invalid_embedded_blueprint_is_located_in_the_file(model, tmp_path):
    bp = model.blueprint.to_dict()
    bp["layers"][3]["layers"][0]["global-attn"]["haeds"] = 2
    torch.save(record(model, blueprint=bp), tmp_path / "i.pt")
    with pytest.raises(VitdslError) as e:
        vitdsl.load_checkpoint(tmp_path / "i.pt")
    assert e.value.path == f"{tmp_path / 'i.pt'}:blueprint:blocks.0.attn"
    assert e.value.message == "unknown field 'haeds' for block 'global-attn'"


def test_weights_that_do_not_fit_the_blueprint(model, tmp_path):
    bp = model.blueprint.to_dict()
    bp["params"]["classes"] = 7
    torch.save(record(model, blueprint=bp), tmp_path / "w.pt")
    assert error_of(tmp_path / "w.pt") == (
        f"checkpoint '{tmp_path / 'w.pt'}' has weights that do not fit its blueprint: head.fc.weight is 10×32 in "
        "the file, 7×32 in the model, head.fc.bias is 10 in the file, 7 in the model\n"
        "  hint: the weights were saved from a different model than the blueprint describes")
    sd = dict(model.state_dict())
    sd["extra.weight"] = sd.pop("head.fc.bias")
    torch.save(record(model, state_dict=sd), tmp_path / "k.pt")
    assert error_of(tmp_path / "k.pt").splitlines()[0] == (
        f"checkpoint '{tmp_path / 'k.pt'}' has weights that do not fit its blueprint: missing head.fc.bias; "
        "unexpected extra.weight")


def test_an_old_checkpoint_loads_unverified_with_a_warning(model, tmp_path):
    torch.save({"blueprint": model.blueprint.to_dict(), "state_dict": model.state_dict()}, tmp_path / "o.pt")
    with pytest.warns(UnverifiedCheckpoint) as caught:
        again = vitdsl.load_checkpoint(tmp_path / "o.pt")
    assert str(caught[0].message) == (f"checkpoint '{tmp_path / 'o.pt'}' was saved before checkpoints carried a "
                                      "SHA-256: its weights are loaded unverified; save it again to add one")
    assert caught[0].filename == __file__  # it points at the caller
    assert torch.equal(again.head.fc.weight, model.head.fc.weight)


def test_save_takes_only_vitdsl_models(tmp_path):
    with pytest.raises(VitdslError) as e:
        vitdsl.save(torch.nn.Linear(2, 2), tmp_path / "l.pt")
    assert str(e.value) == ("save takes a model built by vitdsl, got Linear\n"
                            "  hint: build it with vitdsl.build, or save a plain module with torch.save")
    with pytest.raises(VitdslError, match="the folder '.*nope' does not exist"):
        vitdsl.save(vitdsl.build("vit", overrides=TINY), tmp_path / "nope" / "m.pt")


def test_an_objective_round_trips(tmp_path):
    small = {"encoder.image_size": 32, "encoder.patch": 8, "encoder.dim": 32, "encoder.depth": 1,
             "encoder.heads": 2, "encoder.dim_head": 8, "encoder.mlp": 32, "decoder_dim": 16, "decoder_depth": 1,
             "decoder_heads": 2, "decoder_dim_head": 8}
    mae = vitdsl.build("objectives/mae", overrides=small, seed=1)
    vitdsl.save(mae, tmp_path / "mae.pt")
    again = vitdsl.load_checkpoint(tmp_path / "mae.pt")
    assert type(again).__name__ == "MAE"
    assert fingerprint({}, again.state_dict()) == fingerprint({}, mae.state_dict())


# -- the command line --------------------------------------------------------------------------------
def test_summary_and_build_read_a_checkpoint(saved, capsys):
    assert main(["summary", str(saved)]) == 0
    summary = capsys.readouterr().out
    assert summary.rstrip().endswith("Total params: 13,962")
    named_yaml = saved.with_name("looks_like.yaml")  # recognised by content, not by suffix
    saved.rename(named_yaml)
    assert main(["build", str(named_yaml)]) == 0
    assert capsys.readouterr().out == summary
    assert main(["validate", str(named_yaml)]) == 0
    assert capsys.readouterr().out.startswith("ok: vit — 8 blocks, image 3×32×32 → vector 10\n"
                                              "  params: 13,962 (from the shape rules)\n")


def test_summary_of_a_checkpoint_takes_overrides_and_build_refuses_them(saved, capsys):
    assert main(["summary", str(saved), "--set", "classes=3", "--json"]) == 0
    assert capsys.readouterr().out.count('"output": [\n    3\n  ]') == 1
    assert main(["build", str(saved), "--set", "classes=3", "--seed", "1"]) == 2
    assert capsys.readouterr().err == (
        "error: --set, --seed cannot change a checkpoint: its weights fit its own blueprint\n"
        f"  hint: 'vitdsl summary {saved} --set ...' shows the changed design without weights\n")


def test_the_command_line_reports_a_bad_checkpoint_in_one_message(saved, capsys):
    saved.write_bytes(saved.read_bytes()[:1000])
    assert main(["summary", str(saved)]) == 2
    assert capsys.readouterr().err.startswith(f"error: checkpoint '{saved}' is truncated or damaged")


def test_a_binary_file_that_is_no_checkpoint(tmp_path, capsys):
    path = tmp_path / "model.pt"
    path.write_bytes(b"\x01\x02\xff\xfe binary")
    for command in ("summary", "build", "validate"):
        assert main([command, str(path)]) == 2
        assert capsys.readouterr().err == (
            f"error: '{path}' is neither a blueprint (YAML text) nor a vitdsl checkpoint\n"
            f"  hint: a blueprint is a UTF-8 YAML file; {SAVE_HINT}\n")


def test_build_of_an_old_checkpoint_prints_a_note(model, tmp_path, capsys):
    torch.save({"blueprint": model.blueprint.to_dict(), "state_dict": model.state_dict()}, tmp_path / "o.pt")
    assert main(["build", str(tmp_path / "o.pt"), "--save", str(tmp_path / "new.pt")]) == 0
    assert capsys.readouterr().err == (f"note: checkpoint '{tmp_path / 'o.pt'}' was saved before checkpoints "
                                       "carried a SHA-256: its weights are loaded unverified; save it again to "
                                       "add one\n")
    assert torch.equal(vitdsl.load_checkpoint(tmp_path / "new.pt").head.fc.weight, model.head.fc.weight)


def test_save_replaces_only_regular_files(model, tmp_path):
    """The file is written aside and renamed over the target: never over a device, a folder or a link."""
    (tmp_path / "folder").mkdir()
    (tmp_path / "link.pt").symlink_to(tmp_path / "elsewhere.pt")
    os.mkfifo(tmp_path / "fifo")
    for name, kind in (("folder", "not a regular file"), ("link.pt", "a symbolic link"),
                       ("fifo", "not a regular file")):
        with pytest.raises(VitdslError) as e:
            vitdsl.save(model, tmp_path / name)
        assert e.value.message == f"cannot save to '{tmp_path / name}': it exists and is {kind}"
    assert (tmp_path / "folder").is_dir() and (tmp_path / "link.pt").is_symlink()
    assert not (tmp_path / "elsewhere.pt").exists()
    vitdsl.save(model, tmp_path / "m.pt")
    vitdsl.save(model, tmp_path / "m.pt")  # over an earlier checkpoint
    assert vitdsl.load_checkpoint(tmp_path / "m.pt").blueprint == model.blueprint
