"""Checkpoints: a model's weights together with the blueprint that rebuilds it.

A checkpoint file is untrusted input. It is a safetensors file (the default) whose metadata holds the
record's text fields and the blueprint as JSON, or what ``torch.save`` writes (a zip archive) holding one
dict::

    {"format": "vitdsl-checkpoint", "format_version": 1, "vitdsl_version": "0.1.0",
     "sha256": "…", "blueprint": {…}, "state_dict": {…}}

A safetensors file holds no shared storage: a tensor tied under several keys is stored once, the other
keys listed in the metadata's ``aliases`` and tied again on reading.

``sha256`` covers the blueprint and every tensor (see :func:`fingerprint`): it catches a file damaged
or edited after saving, not a forged one (whoever can write the file can write a matching hash).
Reading measures the pickle before unpickling it (``picklescan``: shared references can make a tiny
file unfold without end), never unpickles anything but tensors and plain data (``weights_only``),
checks the hash before the blueprint is looked at, and reports every way a file can be wrong as one
``VitdslError`` naming the file. Only zip archives are read: bare pickles are what torch wrote before
1.6, and vitdsl.save never did. The embedded blueprint goes through ``from_data`` like any blueprint,
so every blueprint limit applies to it.

Checkpoints saved before the format carried a marker (``{"blueprint", "state_dict"}`` only) still load,
with an :class:`UnverifiedCheckpoint` warning: nothing in them can tell damage from intent.

This module belongs to the package API (it builds models with ``vitdsl.build``); ``vitdsl.save`` and
``vitdsl.load_checkpoint`` are its public names.
"""
from __future__ import annotations

import hashlib
import json
import os
import secrets
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import stfile, torchfile
from .errors import VitdslError

FORMAT = "vitdsl-checkpoint"
FORMAT_VERSION = 1
HINT_SAVE = "a checkpoint is what vitdsl.save (or 'vitdsl build --save FILE') writes"
CHECKPOINT = torchfile.Kind("checkpoint", "a vitdsl checkpoint", HINT_SAVE)


def looks_like_checkpoint(path: str | Path) -> bool:
    """Whether the file starts as a checkpoint does (torch's zip or pickle, or a safetensors header), whatever
    its suffix; without importing torch."""
    return torchfile.looks_like_torch_file(path) or stfile.looks_like(Path(path))
_first_line, _some = torchfile.first_line, torchfile.some


class UnverifiedCheckpoint(UserWarning):
    """A checkpoint from before checkpoints carried a hash was loaded: its contents could not be verified."""


@dataclass
class Checkpoint:
    """A checkpoint read and checked: its blueprint (a Blueprint or an ObjectiveBlueprint), its weights
    (on the CPU) and whether a hash vouched for them."""
    path: Path
    blueprint: Any
    state_dict: dict
    verified: bool
    vitdsl_version: str | None


def fingerprint(blueprint: dict, state_dict: dict) -> str:
    """SHA-256 over the blueprint (canonical JSON) and the tensors in key order, each with its dtype,
    shape and bytes. Every key is hashed on its own, so tied tensors (one tensor under several keys)
    hash the same whether or not the file kept them shared."""
    import torch

    h = hashlib.sha256()
    text = json.dumps(blueprint, sort_keys=True, separators=(",", ":"), default=repr).encode()
    h.update(b"%d\n" % len(text) + text)
    for key in sorted(state_dict):
        t = state_dict[key]
        if not isinstance(t, torch.Tensor):
            raise VitdslError(f"state_dict entry '{key}' is a {type(t).__name__}, not a tensor")
        data = t.detach().to("cpu").contiguous().reshape(-1)
        name = key.encode()
        head = b"%d:%s|%s|%s|" % (len(name), name, str(t.dtype).encode(), str(tuple(t.shape)).encode())
        h.update(head)
        if data.numel():
            # bytes through a uint8 view: numpy has no bfloat16, and the view copies nothing
            h.update(data.view(torch.uint8).numpy())
    return h.hexdigest()


TORCH_SUFFIXES = (".pt", ".pth", ".ckpt", ".bin", ".pkl")  # what torch.save writes; anything else: safetensors


def safetensors_record(record: dict) -> tuple[dict, dict[str, str]]:
    """(tensors, metadata) of a checkpoint record for a safetensors file: the record's text fields in the
    metadata, the blueprint as JSON, and a tensor tied under several keys stored once, the other keys in
    ``aliases`` (safetensors holds no shared storage)."""
    blueprint = record["blueprint"]
    if json.loads(json.dumps(blueprint)) != blueprint:  # keys that are not text, tuples, …: the hash would differ
        raise VitdslError("this blueprint holds values a safetensors checkpoint cannot carry as JSON",
                          hint="save to a .pt file instead")
    tensors, aliases, seen = {}, {}, {}
    for key, t in record["state_dict"].items():
        same = (t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape), t.stride(), t.dtype)
        if t.numel() and same in seen:
            aliases[key] = seen[same]
        else:
            seen[same], tensors[key] = key, t
    meta = {"format": FORMAT, "format_version": str(record["format_version"]),
            "vitdsl_version": record["vitdsl_version"], "sha256": record["sha256"],
            "blueprint": json.dumps(blueprint, ensure_ascii=False), "aliases": json.dumps(aliases)}
    return tensors, meta


def _safetensors_data(path: Path) -> dict:
    """The record a safetensors checkpoint holds, in the shape ``torch.save``'s files give (checked by ``read``)."""
    meta = stfile.metadata(path)
    if meta.get("format") != FORMAT:
        raise _error(path, "is a safetensors file of weights, without the blueprint a checkpoint carries",
                     hint="load weights into a blueprint with 'vitdsl build NAME --weights FILE' "
                          "(vitdsl.interop.pretrained); " + HINT_SAVE)
    fv = meta.get("format_version", "")
    try:
        blueprint, aliases = json.loads(meta.get("blueprint", "")), json.loads(meta.get("aliases", "{}"))
    except (json.JSONDecodeError, RecursionError) as e:
        raise _error(path, f"has a blueprint or aliases that are not JSON ({_first_line(e)})") from None
    state = stfile.read(path)
    if not (isinstance(aliases, dict) and all(isinstance(v, str) and v in state for v in aliases.values())):
        raise _error(path, "has aliases that name no tensor of the file")
    state.update({k: state[v] for k, v in aliases.items()})
    data = {"format": FORMAT, "format_version": int(fv) if fv.isdigit() else fv, "blueprint": blueprint,
            "state_dict": state, **{k: meta[k] for k in ("vitdsl_version", "sha256") if k in meta}}
    return data


def save(model: Any, path: str | Path) -> None:
    """Write ``model``'s weights and blueprint to ``path``, with the format marker, the vitdsl version and
    the SHA-256 of the contents: a safetensors file (its metadata holds the rest), or what ``torch.save``
    writes when the name ends in .pt, .pth, .ckpt, .bin or .pkl. The file appears whole or not at all
    (written aside, then renamed)."""
    import torch

    from . import __version__

    path = Path(path)
    if not hasattr(model, "blueprint") or not hasattr(model.blueprint, "to_dict"):
        raise VitdslError(f"save takes a model built by vitdsl, got {type(model).__name__}",
                          hint="build it with vitdsl.build, or save a plain module with torch.save")
    if not path.parent.is_dir():
        raise VitdslError(f"cannot save to '{path}': the folder '{path.parent}' does not exist")
    if path.is_symlink() or (path.exists() and not path.is_file()):  # the rename would replace a device node,
        kind = "a symbolic link" if path.is_symlink() else "not a regular file"  # a folder or a link itself
        raise VitdslError(f"cannot save to '{path}': it exists and is {kind}",
                          hint="save to a new file, or over an earlier checkpoint file")
    blueprint = model.blueprint.to_dict()
    state = model.state_dict()
    record = {"format": FORMAT, "format_version": FORMAT_VERSION, "vitdsl_version": __version__,
              "sha256": fingerprint(blueprint, state), "blueprint": blueprint, "state_dict": state}
    if path.suffix.lower() in TORCH_SUFFIXES:
        def write(f):
            torch.save(record, f)
    else:
        def write(f):
                    stfile.write(f, *safetensors_record(record))
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # as open() would: the umask decides
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _error(path: Path, what: str, hint: str | None = None) -> VitdslError:
    return torchfile.error(path, what, CHECKPOINT, hint)


def _show(value: Any, text: Any = repr) -> str:
    """A value from the file for a message: plain and short, or only its type (a hostile file's values
    may be huge, or shared a billion times over, and must not be printed whole)."""
    if isinstance(value, (str, float, bool, type(None))) or (isinstance(value, int) and abs(value) < 10**40):
        shown = text(value)
        if len(shown) <= 60:
            return shown
    return f"<a {type(value).__name__}>"


def _describe_foreign(path: Path, data: Any) -> VitdslError:
    """Why a file torch can load is still no vitdsl checkpoint, with what it looks like instead."""
    import torch

    if isinstance(data, dict) and data and all(isinstance(v, torch.Tensor) for v in data.values()):
        first = next(iter(data))
        return _error(path, f"is a plain state_dict ({len(data)} tensors, e.g. '{first}'), not a vitdsl "
                            "checkpoint: it has no blueprint to rebuild the model from",
                      hint="build the model from its blueprint, then model.load_state_dict(torch.load(file)); "
                           "for vit-pytorch weights see vitdsl.interop")
    if isinstance(data, dict):
        keys = ", ".join(_show(k) for k in list(data)[:6]) + (", …" if len(data) > 6 else "")
        return _error(path, f"is not a vitdsl checkpoint: a dict with the keys {keys or 'none'}, without "
                            "'format' and 'blueprint'", hint=HINT_SAVE)
    return _error(path, f"is not a vitdsl checkpoint: it holds a {type(data).__name__}, not a dict",
                  hint=HINT_SAVE)


def read(path: str | Path, stacklevel: int = 1) -> Checkpoint:
    """Read and check a checkpoint without building anything: format, version, hash and blueprint.
    ``stacklevel``: which caller an UnverifiedCheckpoint warning points at (1: the caller of ``read``)."""
    import torch

    path = Path(path)
    if path.is_file() and stfile.looks_like(path):  # first: its length can read as a pickle's opcodes
        data = _safetensors_data(path)
    else:
        data = torchfile.load(path, CHECKPOINT)
    verified, version = True, None
    if isinstance(data, dict) and "format" not in data and set(data) == {"blueprint", "state_dict"}:
        warnings.warn(f"checkpoint '{path}' was saved before checkpoints carried a SHA-256: its weights are "
                      "loaded unverified; save it again to add one", UnverifiedCheckpoint, stacklevel=stacklevel + 1)
        verified = False
    elif not isinstance(data, dict) or data.get("format") != FORMAT:
        raise _describe_foreign(path, data)
    else:
        fv, version = data.get("format_version"), data.get("vitdsl_version")
        if not isinstance(fv, int) or isinstance(fv, bool) or fv < 1:
            raise _error(path, f"has an invalid format_version {_show(fv)}")
        if fv > FORMAT_VERSION:
            from . import __version__

            raise _error(path, f"was written in checkpoint format {_show(fv)} (by vitdsl "
                               f"{_show(version, str)}); this vitdsl ({__version__}) reads format "
                               f"{FORMAT_VERSION} and older",
                         hint="upgrade vitdsl to load it")
        missing = [k for k in ("sha256", "blueprint", "state_dict") if k not in data]
        if missing:
            raise _error(path, f"is incomplete: it lacks {', '.join(missing)}")
    blueprint, state = data["blueprint"], data["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                              and v.layout == torch.strided for k, v in state.items()):
        raise _error(path, "has a state_dict that is not a mapping of names to (dense) tensors")
    spread = [k for k, v in state.items() if v.numel() * v.element_size() > v.untyped_storage().nbytes()]
    if spread:  # a stride-0 view can stand for any size: hashing it would copy that size
        raise _error(path, f"has tensors larger than the data stored for them: {_some(spread)}")
    if not isinstance(blueprint, dict):
        raise _error(path, f"has a blueprint that is a {type(blueprint).__name__}, not a mapping")
    _check_plain(path, blueprint)
    if verified:
        sha = data["sha256"]
        try:
            actual = fingerprint(blueprint, state)
        except (TypeError, ValueError, RuntimeError) as e:  # unsortable keys, tensors with no plain bytes
            raise _error(path, f"cannot be hashed ({type(e).__name__}: {_first_line(e)})") from None
        if not isinstance(sha, str) or sha != actual:
            raise _error(path, "is corrupt: its contents do not match the SHA-256 recorded when it was saved",
                         hint="the file was damaged or changed after saving; restore it from a good copy")
    return Checkpoint(path, _blueprint(path, blueprint), state, verified,
                      version if isinstance(version, str) else None)


MAX_VALUES = 100_000  # the zoo's largest blueprint holds about a thousand
MAX_DEPTH = 64  # and nests about a dozen levels deep
PLAIN = (str, int, float, bool, type(None))


def _check_plain(path: Path, data: dict) -> None:
    """The blueprint must be a modest tree of plain values. A pickle can share one list many times over
    (as YAML aliases can), so a few bytes may stand for more values than hashing or checking could ever
    visit: values are counted as reached, shared or not, and the walk stops at the limit."""
    stack, seen = [(data, 1)], 0
    while stack:
        value, depth = stack.pop()
        seen += 1
        if seen > MAX_VALUES or depth > MAX_DEPTH:
            raise _error(path, f"has a blueprint too large to be one (more than {MAX_VALUES:,} values or "
                               f"{MAX_DEPTH} levels of nesting)")
        if isinstance(value, dict):
            for k, v in value.items():
                if not isinstance(k, PLAIN):
                    raise _error(path, f"has a blueprint with a {type(k).__name__} as a key")
                stack.append((v, depth + 1))
        elif isinstance(value, (list, tuple)):
            stack.extend((v, depth + 1) for v in value)
        elif not isinstance(value, PLAIN):
            raise _error(path, f"has a blueprint holding a {type(value).__name__}")


def _in_file(path: Path, e: VitdslError) -> VitdslError:
    """An error of the embedded blueprint, located in the checkpoint (it has no lines of its own)."""
    where = f"{path}:blueprint" + (f":{e.path}" if e.path else "")
    return VitdslError(e.message, path=where, hint=e.hint)


def _blueprint(path: Path, data: dict) -> Any:
    from .blueprint.load import from_data

    try:
        return from_data(data, file=str(path))
    except VitdslError as e:
        raise _in_file(path, e) from None
    except (RecursionError, ValueError, TypeError, KeyError, AttributeError, IndexError) as e:
        # the data came from a file, not from a YAML parse, so it may hold shapes no YAML gives
        raise _error(path, f"has a blueprint that cannot be read ({type(e).__name__}: {_first_line(e)})") from None


def load(path: str | Path, device: Any = None, **objective_args: Any) -> Any:
    """Rebuild a model saved with :func:`save` from its embedded blueprint and load its weights."""
    from . import build

    ck = read(path, stacklevel=3)  # the warning points at whoever called vitdsl.load_checkpoint
    try:
        model = build(ck.blueprint, device=device, **objective_args)
    except VitdslError as e:
        raise _in_file(ck.path, e) from None
    _check_weights(ck, model.state_dict())
    model.load_state_dict(ck.state_dict)
    return model


def _check_weights(ck: Checkpoint, expected: dict) -> None:
    """Names and shapes of the saved weights against the model the blueprint builds, all at once."""
    problems = []
    missing = [k for k in expected if k not in ck.state_dict]
    extra = [k for k in ck.state_dict if k not in expected]
    wrong = [f"{k} is {_dims(ck.state_dict[k])} in the file, {_dims(v)} in the model"
             for k, v in expected.items() if k in ck.state_dict and ck.state_dict[k].shape != v.shape]
    if missing:
        problems.append(f"missing {_some(missing)}")
    if extra:
        problems.append(f"unexpected {_some(extra)}")
    if wrong:
        problems.append(_some(wrong))
    if problems:
        raise _error(ck.path, "has weights that do not fit its blueprint: " + "; ".join(problems),
                     hint="the weights were saved from a different model than the blueprint describes")


def _dims(t) -> str:
    return "×".join(str(d) for d in t.shape) or "a scalar"
