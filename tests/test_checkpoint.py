"""Checkpoints are untrusted input: a good one round-trips exactly; every way a file can be wrong
(missing, cut off, damaged, foreign, newer, hostile, mismatched) is one VitdslError naming the file."""
import argparse
import io
import os
import pickle
import signal
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest
import torch

import vitdsl
from vitdsl import VitdslError
from vitdsl.checkpoint import FORMAT, FORMAT_VERSION, UnverifiedCheckpoint, fingerprint
from vitdsl.cli import main

ROOT = Path(__file__).resolve().parent.parent
TINY = {"depth": 1, "dim": 32, "heads": 2, "dim_head": 16, "mlp": 32, "image_size": 32, "patch": 8, "classes": 10}
SAVE_HINT = "a checkpoint is what vitdsl.save (or 'vitdsl build --save FILE') writes"


@pytest.fixture(scope="module")
def model():
    return vitdsl.build("vit", overrides=TINY, seed=0)


@pytest.fixture
def saved(model, tmp_path):
    path = tmp_path / "m.pt"
    vitdsl.save(model, path)
    return path


def record(model, **changes) -> dict:
    """What save writes, with some entries changed; the hash recomputed unless 'sha256' is given."""
    bp, sd = changes.pop("blueprint", model.blueprint.to_dict()), changes.pop("state_dict", model.state_dict())
    data = {"format": FORMAT, "format_version": FORMAT_VERSION, "vitdsl_version": vitdsl.__version__,
            "sha256": fingerprint(bp, sd), "blueprint": bp, "state_dict": sd}
    data.update(changes)
    return data


def error_of(path) -> str:
    with pytest.raises(VitdslError) as e:
        vitdsl.load_checkpoint(path)
    return str(e.value)


def flip(path: Path, start: int, n: int = 64) -> None:
    raw = bytearray(path.read_bytes())
    raw[start:start + n] = bytes(b ^ 0xFF for b in raw[start:start + n])
    path.write_bytes(bytes(raw))


def data_offset(path: Path, member_suffix: str) -> tuple[int, int]:
    """(offset in the file, size) of a zip member's stored bytes: torch.save does not compress."""
    with zipfile.ZipFile(path) as z:
        info = next(i for i in z.infolist() if i.filename.endswith(member_suffix))
    raw = path.read_bytes()
    name_len, extra_len = (int.from_bytes(raw[info.header_offset + k:info.header_offset + k + 2], "little")
                           for k in (26, 28))
    return info.header_offset + 30 + name_len + extra_len, info.file_size


def test_save_writes_the_marker_the_version_and_the_hash(model, saved):
    data = torch.load(saved, weights_only=True)
    assert sorted(data) == ["blueprint", "format", "format_version", "sha256", "state_dict", "vitdsl_version"]
    assert (data["format"], data["format_version"], data["vitdsl_version"]) == ("vitdsl-checkpoint", 1, "0.1.0")
    assert data["sha256"] == fingerprint(model.blueprint.to_dict(), model.state_dict())
    assert len(data["sha256"]) == 64
    assert [p.name for p in saved.parent.iterdir()] == ["m.pt"]  # no temporary file left behind


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


def test_a_bare_pickle_is_refused(model, tmp_path):
    """torch.save wrote bare pickles before torch 1.6; vitdsl.save never did, so nothing is unpickled."""
    (tmp_path / "p.pt").write_bytes(pickle.dumps({"cmd": os.system}))
    torch.save(record(model), tmp_path / "old.pt", _use_new_zipfile_serialization=False)
    for name in ("p.pt", "old.pt"):
        assert error_of(tmp_path / name) == (f"checkpoint '{tmp_path / name}' is a bare pickle, not a vitdsl "
                                             f"checkpoint: vitdsl.save writes zip archives\n  hint: {SAVE_HINT}")


def zip_with_pickle(path: Path, data: bytes) -> None:
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", data)
        z.writestr("archive/version", "3\n")


def test_a_pickle_that_unfolds_without_end_is_refused_before_unpickling(tmp_path):
    """A dict whose key is a tuple holding one tuple ten times, forty levels deep: under a kilobyte, 10**40
    values, and hashing the key (which unpickling does) would never end."""
    out = [b"\x80\x02}q\x00(X\x01\x00\x00\x00x"]  # PROTO 2, EMPTY_DICT, BINPUT 0, MARK, 'x'
    for i in range(1, 41):  # BINPUT i, MARK, BINGET i ×10, TUPLE
        out.append(b"q" + bytes([i]) + b"(" + (b"h" + bytes([i])) * 10 + b"t")
    out.append(b"K\x01u.")  # BININT1 1, SETITEMS, STOP
    zip_with_pickle(tmp_path / "bomb.pt", b"".join(out))
    assert error_of(tmp_path / "bomb.pt") == (
        f"checkpoint '{tmp_path / 'bomb.pt'}' is not a vitdsl checkpoint: its pickle is hostile (it unfolds to "
        f"more than 20,000,000 values)\n  hint: {SAVE_HINT}")
    deep = None
    for _ in range(300):
        deep = [deep]
    zip_with_pickle(tmp_path / "deep.pt", pickle.dumps(deep, protocol=2))
    assert "its pickle is hostile (it nests more than 200 levels deep)" in error_of(tmp_path / "deep.pt")


def test_a_pickle_over_the_size_limit_is_not_read(saved, monkeypatch):
    import vitdsl.checkpoint

    monkeypatch.setattr(vitdsl.checkpoint, "MAX_PICKLE_BYTES", 1 << 10)
    assert error_of(saved) == (f"checkpoint '{saved}' is not a vitdsl checkpoint: its pickle is over 0 MiB (a "
                               f"checkpoint's takes about 200 bytes a tensor)\n  hint: {SAVE_HINT}")


def test_a_compressed_record_is_not_inflated(saved, tmp_path):
    with zipfile.ZipFile(saved) as src, zipfile.ZipFile(tmp_path / "c.pt", "w") as dst:
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info), compress_type=zipfile.ZIP_DEFLATED)
    assert error_of(tmp_path / "c.pt") == (f"checkpoint '{tmp_path / 'c.pt'}' is not a vitdsl checkpoint: it "
                                           "has compressed records (archive/data.pkl and 28 more), which torch.save never writes\n"
                                           f"  hint: {SAVE_HINT}")


def test_a_malformed_pickle_with_a_good_crc(tmp_path):
    zip_with_pickle(tmp_path / "m.pt", b"\x80\x02h\x07.")  # BINGET of nothing stored
    assert error_of(tmp_path / "m.pt") == (f"checkpoint '{tmp_path / 'm.pt'}' is truncated or damaged: BINGET of 7, "
                                           "which was never stored\n  hint: restore it from a good copy, or save "
                                           "it again")


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
        "(0.1.0) reads format 1 and older\n  hint: upgrade vitdsl to load it")


@pytest.mark.parametrize("changes, message", [
    ({"format_version": "1"}, "has an invalid format_version '1'"),
    ({"format_version": [[0] * 10] * 10}, "has an invalid format_version <a list>"),
    ({"format_version": 10**50, "vitdsl_version": "9" * 100},
     "was written in checkpoint format <a int> (by vitdsl <a str>); this vitdsl (0.1.0) reads format 1 and older"),
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


def test_a_blueprint_of_shared_lists_is_refused_before_it_is_walked(model, tmp_path):
    """A pickle can repeat one list (as YAML aliases can): 6 levels of 10 references to the level below
    are a few hundred bytes and a million values, too few for the pickle check (a state_dict unfolds to
    that many) but far more than any blueprint: neither the hash nor the checks visit them all."""
    bomb = ["x"]
    for _ in range(6):
        bomb = [bomb] * 10
    bp = {**model.blueprint.to_dict(), "description": bomb}
    data = record(model, blueprint={"name": "vit"})
    data["blueprint"] = bp
    torch.save(data, tmp_path / "b.pt")
    assert (tmp_path / "b.pt").stat().st_size < 200_000
    assert error_of(tmp_path / "b.pt") == (f"checkpoint '{tmp_path / 'b.pt'}' has a blueprint too large to be one "
                                           "(more than 100,000 values or 64 levels of nesting)")


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


HOSTILE = textwrap.dedent("""\
    import signal, sys, time
    import vitdsl
    signal.alarm(2)  # the default action ends the process: a runaway expression cannot be interrupted else
    start = time.perf_counter()
    try:
        vitdsl.load_checkpoint(sys.argv[1])
    except vitdsl.VitdslError as e:
        print(f"VitdslError after {time.perf_counter() - start:.2f} s: {e}")
""")


def test_a_hostile_embedded_blueprint_fails_fast(model, tmp_path):
    """NOTE: this fails until the blueprint expression limits (``${10**10**10}``) land: without them the
    embedded blueprint is evaluated like any other and the pow runs away; the child is killed at 2 s."""
    bp = model.blueprint.to_dict()
    bp["params"]["classes"] = "${10**10**10}"
    torch.save(record(model, blueprint=bp), tmp_path / "h.pt")
    run = subprocess.run([sys.executable, "-c", HOSTILE, str(tmp_path / "h.pt")], cwd=ROOT, capture_output=True,
                         text=True, timeout=300)
    assert run.returncode != -signal.SIGALRM, "loading the checkpoint still ran after 2 s"
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("VitdslError after ") and f"{tmp_path / 'h.pt'}:blueprint" in run.stdout


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
