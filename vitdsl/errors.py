"""One error type for everything a user can get wrong, and the helpers that make its message useful.

Every user error carries *where* (file:line:col and the block path), *what* is wrong and *how to fix
it*. The command line prints ``str(error)`` and exits with status 2; nothing else is shown.
"""
from __future__ import annotations

import difflib
import unicodedata
from dataclasses import dataclass
from typing import Iterable


def safe_text(text: str, keep_newlines: bool = True) -> str:
    """``text`` with control, format and bidi characters written as escapes, so that nothing echoed from a
    blueprint can move the cursor, retitle the terminal or reorder what the reader sees."""
    def clean(ch: str) -> str:
        if ch == "\n" and keep_newlines:
            return ch
        if unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"):
            code = ord(ch)
            return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"
        return ch

    # line by line first: messages hold newlines, and the check per character made every refused size of
    # ``vitdsl validate``'s search (graph/sizes.py) cost a pass in Python over its whole message
    if text.isprintable() or keep_newlines and all(line.isprintable() for line in text.split("\n")):
        return text
    return "".join(map(clean, text))


def clip(text: str, limit: int = 80) -> str:
    """``text`` cut to ``limit`` characters for a message: a long value is echoed by its start."""
    return text if len(text) <= limit else text[:limit - 1] + "…"


@dataclass(frozen=True)
class Location:
    file: str  # a path, or for values that come from no file what gave them ("override 'dim'")
    line: int  # 1-based; 0 for values from no file
    col: int  # 1-based

    def __str__(self) -> str:
        if self.line == 0:
            return self.file
        return f"{self.file}:{self.line}:{self.col}"


class VitdslError(Exception):
    """A mistake in a blueprint, an override or a call, reported as one clear message."""

    def __init__(self, message: str, *, location: Location | None = None, path: str | None = None,
                 hint: str | None = None):
        self.message = message
        self.location = location
        self.path = path
        self.hint = hint
        super().__init__(self.format())

    def format(self) -> str:
        where = []
        if self.location is not None:
            where.append(str(self.location))
        if self.path:
            where.append(self.path)
        head = safe_text(": ".join(where + [self.message]) if where else self.message)
        return f"{head}\n  hint: {safe_text(self.hint)}" if self.hint else head

    def __str__(self) -> str:
        return self.format()

    def at(self, location: Location | None = None, path: str | None = None) -> "VitdslError":
        """The same error, with a location or block path filled in where it had none."""
        return VitdslError(self.message, location=self.location or location, path=self.path or path,
                           hint=self.hint)


class ShapeError(VitdslError):
    """A block cannot take the shape that reaches it (divisibility, kind, sizes)."""


def did_you_mean(word: str, choices: Iterable[str]) -> str | None:
    choices = list(choices)
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f"did you mean '{close[0]}'?" if close else None


def suggest(word: str, choices: Iterable[str], what: str) -> str:
    """'did you mean X?' when something is close, otherwise the list of valid choices."""
    choices = sorted(choices)
    if not choices:
        return f"there are no {what} to choose from yet"
    close = did_you_mean(word, choices)
    listing = f"{what}: " + ", ".join(choices)
    return f"{close} ({listing})" if close else listing
