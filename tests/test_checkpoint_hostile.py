"""Hostile checkpoints: files made to exhaust time or memory, or to run code, fail fast with one
VitdslError, before anything is unpickled, hashed or built wherever possible."""
import os
import pickle
import signal
import subprocess
import sys
import textwrap
import zipfile

import torch
from checkpoint_files import ROOT, SAVE_HINT, error_of, record, zip_with_pickle


def test_a_bare_pickle_is_refused(model, tmp_path):
    """torch.save wrote bare pickles before torch 1.6; vitdsl.save never did, so nothing is unpickled."""
    (tmp_path / "p.pt").write_bytes(pickle.dumps({"cmd": os.system}))
    torch.save(record(model), tmp_path / "old.pt", _use_new_zipfile_serialization=False)
    for name in ("p.pt", "old.pt"):
        assert error_of(tmp_path / name) == (f"checkpoint '{tmp_path / name}' is a bare pickle, not a vitdsl "
                                             "checkpoint: torch.save has written zip archives since torch 1.6\n"
                                             f"  hint: {SAVE_HINT}")


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
    import vitdsl.torchfile

    monkeypatch.setattr(vitdsl.torchfile, "MAX_PICKLE_BYTES", 1 << 10)
    assert error_of(saved) == (f"checkpoint '{saved}' is not a vitdsl checkpoint: its pickle is over 0 MiB (a "
                               f"checkpoint's takes about 200 bytes a tensor)\n  hint: {SAVE_HINT}")


def test_a_compressed_record_is_not_inflated(saved, tmp_path):
    with zipfile.ZipFile(saved) as src, zipfile.ZipFile(tmp_path / "c.pt", "w") as dst:
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info), compress_type=zipfile.ZIP_DEFLATED)
    assert error_of(tmp_path / "c.pt") == (f"checkpoint '{tmp_path / 'c.pt'}' is not a vitdsl checkpoint: it "
                                           "has compressed records (archive/data.pkl and 28 more), "
                                           "which torch.save never writes\n"
                                           f"  hint: {SAVE_HINT}")


def test_a_malformed_pickle_with_a_good_crc(tmp_path):
    zip_with_pickle(tmp_path / "m.pt", b"\x80\x02h\x07.")  # BINGET of nothing stored
    assert error_of(tmp_path / "m.pt") == (f"checkpoint '{tmp_path / 'm.pt'}' is truncated or damaged: BINGET of 7, "
                                           "which was never stored\n  hint: restore it from a good copy, or save "
                                           "it again")


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


HOSTILE = textwrap.dedent("""\
    import signal, sys, time
    import vitdsl
    vitdsl.load_checkpoint(sys.argv[1])  # a good one first: imports (torch, the blocks) are not timed
    signal.alarm(2)  # the default action ends the process: a runaway expression cannot be interrupted else
    start = time.perf_counter()
    try:
        vitdsl.load_checkpoint(sys.argv[2])
    except vitdsl.VitdslError as e:
        print(f"VitdslError after {time.perf_counter() - start:.2f} s: {e}")
    finally:
        signal.alarm(0)  # refused in time: what follows (the interpreter's exit, on a busy machine) is not timed
""")


def test_a_hostile_embedded_blueprint_fails_fast(model, saved, tmp_path):
    """NOTE: this fails until the blueprint expression limits (``${10**10**10}``) land: without them the
    embedded blueprint is evaluated like any other and the pow runs away; the child is killed at 2 s."""
    bp = model.blueprint.to_dict()
    bp["params"]["classes"] = "${10**10**10}"
    torch.save(record(model, blueprint=bp), tmp_path / "h.pt")
    run = subprocess.run([sys.executable, "-c", HOSTILE, str(saved), str(tmp_path / "h.pt")], cwd=ROOT,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode != -signal.SIGALRM, ("loading the checkpoint still ran after 2 s: are the blueprint "
                                               "expression limits in?")
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("VitdslError after ") and f"{tmp_path / 'h.pt'}:blueprint" in run.stdout


def test_an_archive_with_two_records_of_one_name_is_refused(model, tmp_path):
    """Python's zip reader and torch's could each pick another copy: the scanned pickle must be the loaded one."""
    import warnings

    path = tmp_path / "twice.pt"
    zip_with_pickle(path, pickle.dumps({"a": 1}))
    with warnings.catch_warnings(), zipfile.ZipFile(path, "a") as z:
        warnings.simplefilter("ignore")  # zipfile warns of the duplicate it is told to write
        z.writestr("archive/data.pkl", pickle.dumps({"b": 2}))
    assert error_of(path) == (f"checkpoint '{path}' is not a vitdsl checkpoint: its archive holds records with the "
                              f"same name, which torch.save never writes\n  hint: {SAVE_HINT}")
