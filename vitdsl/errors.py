"""One error type for everything a user can get wrong, and the helpers that make its message useful.

Every user error carries *where* (file:line:col and the block path), *what* is wrong and *how to fix
it*. The command line prints ``str(error)`` and exits with status 2; nothing else is shown.
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Iterable


@dataclass(frozen=True)
class Location:
    file: str
    line: int  # 1-based
    col: int  # 1-based

    def __str__(self) -> str:
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
        head = ": ".join(where + [self.message]) if where else self.message
        return f"{head}\n  hint: {self.hint}" if self.hint else head

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
