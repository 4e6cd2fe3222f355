"""Reading a file ``torch.save`` wrote, when the file is untrusted (checkpoints, teacher weights).

``torch.load(weights_only=True)`` refuses code but not cost, and fails on a damaged file with errors that
name neither the file nor the cause. Here a file is first recognised by its content, its zip archive is
checked (complete, stored not compressed, pickles of a sane size), its pickles are measured before
anything is unpickled (``picklescan``: shared references can make a tiny file unfold without end), and
only then is it loaded, tensors and plain data only. Every way it can fail is one ``VitdslError`` naming
the file as its ``Kind`` says.
"""
from __future__ import annotations

import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import VitdslError

ZIP_MAGIC = b"PK\x03\x04"
MAX_PICKLE_BYTES = 32 << 20


@dataclass(frozen=True)
class Kind:
    """How errors name the file: ``label`` before its path, ``name`` for what it should have been."""

    label: str  # "checkpoint"
    name: str  # "a vitdsl checkpoint"
    hint: str  # how to make a good one


def looks_like_torch_file(path: str | Path) -> bool:
    """Whether the file starts like something ``torch.save`` writes: a zip archive, or a pickle (the
    format before torch 1.6). Decided by content, whatever the suffix."""
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError:
        return False
    return head == ZIP_MAGIC or (len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5)


def error(path: Path, what: str, kind: Kind, hint: str | None = None) -> VitdslError:
    return VitdslError(f"{kind.label} '{path}' {what}", hint=hint)


def load(path: Path, kind: Kind) -> Any:
    """What the file holds (tensors and plain data only), or one error saying why it cannot be read."""
    import pickle

    import torch

    if not path.exists():
        raise error(path, "does not exist", kind)
    if not path.is_file():
        raise error(path, "is not a file", kind)
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError as e:
        raise error(path, f"cannot be read: {e.strerror}", kind) from None
    if size == 0:
        raise error(path, "is empty", kind, hint="it was probably cut off while being written; save it again")
    if not looks_like_torch_file(path):
        raise error(path, f"is not {kind.name}: it is neither a zip archive nor a pickle "
                           "(what torch.save writes)", kind, hint=kind.hint)
    if head != ZIP_MAGIC:  # torch < 1.6 wrote bare pickles; vitdsl (torch >= 2.2) never did
        raise error(path, f"is a bare pickle, not {kind.name}: torch.save has written zip archives since torch 1.6",
                    kind, hint=kind.hint)
    _check_zip(path, kind)
    try:
        with warnings.catch_warnings():  # a foreign pickle's protocol warning would only precede our error
            warnings.filterwarnings("ignore", message="Detected pickle protocol", category=UserWarning)
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if "weights only" in str(e).lower() or "weights_only" in str(e):
            raise error(path, f"is not {kind.name}: it holds Python objects other than tensors and "
                               "plain data, which vitdsl refuses to unpickle (they could run code)", kind,
                         hint=kind.hint) from None
        raise error(path, f"is damaged: its pickle cannot be read ({first_line(e)})", kind) from None
    except (EOFError, RuntimeError, OSError, ValueError, KeyError, TypeError, AttributeError, IndexError,
            zipfile.BadZipFile) as e:
        raise error(path, f"is damaged or not {kind.name}: torch cannot load it ({type(e).__name__}: "
                           f"{first_line(e)})", kind, hint=kind.hint) from None


def _check_zip(path: Path, kind: Kind) -> None:
    """Before torch reads the file: a truncated archive or a damaged pickle makes torch fail with miniz
    or unpickler errors that name neither cause, and a hostile pickle could unfold past any memory or
    time (see ``picklescan``). Only the pickles are read here: the tensor data is plain bytes (a
    checkpoint's SHA-256 covers them)."""
    from . import picklescan

    try:
        with zipfile.ZipFile(path) as z:
            names = [i.filename for i in z.infolist()]
            # zip readers differ on which of two same-named records counts: torch's could load one not scanned
            if len(names) != len(set(names)):
                raise error(path, f"is not {kind.name}: its archive holds records with the same name, which "
                                  "torch.save never writes", kind, hint=kind.hint)
            pickles = [i for i in z.infolist() if i.filename.endswith("data.pkl")]
            if not pickles:
                raise error(path, f"is not {kind.name}: a zip archive without the data.pkl that "
                                   "torch.save writes", kind, hint=kind.hint)
            if sum(i.file_size for i in pickles) > MAX_PICKLE_BYTES:
                raise error(path, f"is not {kind.name}: its pickle is over {MAX_PICKLE_BYTES >> 20} "
                                   "MiB (a checkpoint's takes about 200 bytes a tensor)", kind, hint=kind.hint)
            packed = [i.filename for i in z.infolist() if i.compress_type != zipfile.ZIP_STORED]
            if packed:  # torch.save stores; a compressed record could inflate a small file to any size
                raise error(path, f"is not {kind.name}: it has compressed records ({some(packed, 1)}), "
                                   "which torch.save never writes", kind, hint=kind.hint)
            for info in pickles:
                picklescan.check(z.read(info))
    except picklescan.TooLarge as e:
        raise error(path, f"is not {kind.name}: its pickle is hostile ({e})", kind, hint=kind.hint) from None
    except zipfile.BadZipFile as e:
        if "CRC" in str(e):
            raise error(path, "is damaged: a CRC check of its contents failed", kind,
                         hint="restore it from a good copy, or save it again") from None
        raise error(path, "is truncated or damaged: it is not a complete zip archive", kind,
                     hint="it was probably cut off while being copied or written; restore it or save it "
                          "again") from None
    except (OSError, EOFError, ValueError, NotImplementedError, IndexError) as e:
        raise error(path, f"is truncated or damaged: {first_line(e)}", kind,
                     hint="restore it from a good copy, or save it again") from None


def first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__




def some(items: list[str], n: int = 3) -> str:
    """The first ``n`` names, each cut at 200 characters, and how many more (names in a file are untrusted)."""
    items = [i if len(i) <= 200 else i[:200] + "…" for i in items[:n]] + items[n:]
    return ", ".join(items[:n]) + (f" and {len(items) - n} more" if len(items) > n else "")
