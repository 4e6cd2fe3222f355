"""Which files a blueprint may name: ``extends``, objective encoders, teachers and their weights.

A blueprint is untrusted input (people share them, checkpoints carry them), so the files it names must
lie inside a few roots: the zoo, the working directory, the folder of the blueprint the user named, and
folders the user grants (``--allow-path DIR``, ``allow_paths=``). The file the user names is their own
choice and is never refused. Paths are compared after resolving symbolic links and ``..``, and a refusal
never says anything of the target but its name.
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Iterable, Iterator

from ..errors import VitdslError

Roots = tuple[Path, ...]
MAX_NAME = 1024  # characters in a file reference; longer is no real path, and some systems fail on it

_active: ContextVar[Roots | None] = ContextVar("vitdsl_roots", default=None)


def zoo_dir() -> Path:
    """Where the zoo lives: inside the installed package, or the repository's ``blueprints/``."""
    here = Path(__file__).resolve().parent.parent
    for candidate in (here / "zoo", here.parent / "blueprints"):
        if candidate.is_dir():
            return candidate
    raise VitdslError("the blueprint zoo is not installed (no vitdsl/zoo or blueprints/ folder)")


def roots_for(top: Path | None = None, allow_paths: Iterable[str | Path] = ()) -> Roots:
    """The zoo, the working directory, the folder of ``top`` and the granted folders."""
    out = [zoo_dir().resolve(), Path.cwd().resolve()]
    if top is not None:
        out.append(top.resolve().parent)
    for p in allow_paths:
        granted = Path(p).expanduser()
        if not granted.is_dir():
            raise VitdslError(f"--allow-path '{p}' is not a folder", hint="grant a folder that holds blueprints")
        out.append(granted.resolve())
    return tuple(dict.fromkeys(out))


def active() -> Roots | None:
    """The roots of the load in progress, if any."""
    return _active.get()


def current() -> Roots:
    return _active.get() or roots_for()


@contextmanager
def within(roots: Roots | None) -> Iterator[Roots]:
    """Run the files a blueprint names against ``roots`` (the default roots when None)."""
    token = _active.set(roots or roots_for())
    try:
        yield _active.get()
    finally:
        _active.reset(token)


def allowed(path: Path, roots: Roots | None = None) -> bool:
    try:
        real = path.resolve()
    except (OSError, RuntimeError, ValueError):  # a loop of links, or a name the system refuses
        return False
    return any(real == r or real.is_relative_to(r) for r in roots or current())


def refusal(ref: str, what: str = "blueprint") -> VitdslError:
    """The error for a file outside the roots: the name as written, never the target's content."""
    return VitdslError(f"the {what} '{ref}' is outside the folders a blueprint may read",
                       hint="a blueprint may name files in the zoo, the working directory and the folder of the "
                            "blueprint you named; grant another folder with --allow-path DIR (allow_paths=[DIR] "
                            "in Python)")


def check_name(ref: str, what: str = "blueprint") -> None:
    if len(ref) > MAX_NAME:
        raise VitdslError(f"the {what} name is {len(ref):,} characters long, more than {MAX_NAME:,}",
                          hint="name a file by a shorter path")
    if "\x00" in ref:
        raise VitdslError(f"the {what} name {ref!r} holds a NUL character")
    if Path(ref).name in ("", ".", ".."):
        raise VitdslError(f"the {what} name {ref!r} names no file", hint="give a file path or a zoo name")


RECORDINGS: list[dict[str, list]] = []  # open recordings (vitdsl list's cache): what a load looked at


@contextmanager
def recording() -> Iterator[dict[str, list]]:
    """Within, note every file looked for (``lookups``: path, found) and read (``files``: resolved path and the
    SHA-256 of its text, noted by the reader): what decided the outcome of a load, besides vitdsl itself."""
    seen: dict[str, list] = {"lookups": [], "files": []}
    RECORDINGS.append(seen)
    try:
        yield seen
    finally:
        RECORDINGS.remove(seen)


def note(kind: str, *what) -> None:
    for seen in RECORDINGS:
        seen[kind].append(list(what))


def is_file(path: Path) -> bool:
    """``path.is_file()``, with names the system cannot even look up (too long, bad bytes) counted as absent."""
    try:
        found = path.is_file()
    except (OSError, ValueError):
        found = False
    if RECORDINGS:
        note("lookups", os.path.abspath(path), found)
    return found


def is_regular(path: Path) -> bool:
    """A plain file, not a device, pipe or /proc entry whose reading could block or never end."""
    try:
        st = path.stat()
    except (OSError, ValueError):
        return False
    import stat

    return stat.S_ISREG(st.st_mode) and not str(path.resolve()).startswith(("/proc/", "/sys/", "/dev/"))


def checked(path: Path, ref: str, what: str = "file") -> Path:
    """``path`` when it lies inside the active roots; the refusal otherwise."""
    if not allowed(path):
        raise refusal(ref, what)
    return path

