"""How big a pickle unfolds, measured before anything is unpickled.

``torch.load(weights_only=True)`` refuses code, but not size: a pickle can put one tuple ten times into
the next, forty levels deep — a few hundred bytes standing for 10**40 values. Unpickling it is quick
(the references are shared), but the first ``hash`` of such a tuple, as a dict key, never ends and
cannot be interrupted. Nesting a million levels deep is small too, and overflows the C stack of
anything recursive. So the opcodes are walked once, without building anything: every object becomes a
cell with the number of values it unfolds to and its depth, shared cells count each time they are
used, and the walk stops at the first object past a limit.
"""
from __future__ import annotations

import pickletools

MAX_VALUES = 20_000_000  # a state_dict unfolds to ~20 values per tensor
MAX_DEPTH = 200  # a state_dict nests ~5 levels deep
MUTATORS = {"APPEND", "APPENDS", "SETITEM", "SETITEMS", "ADDITEMS", "BUILD"}  # change the object below them
MARK = object()


class TooLarge(Exception):
    """The pickle unfolds past a limit; the message says which."""


class _Cell:
    __slots__ = ("size", "depth")

    def __init__(self, size: int, depth: int):
        self.size, self.depth = size, depth


def check(data: bytes, max_values: int = MAX_VALUES, max_depth: int = MAX_DEPTH) -> None:
    """Raise TooLarge when the pickle ``data`` unfolds to more than ``max_values`` values or nests deeper
    than ``max_depth``; ``ValueError`` when it is not a well-formed pickle."""
    stack: list = []
    memo: dict = {}
    for op, arg, _ in pickletools.genops(data):
        name = op.name
        if name in ("PUT", "BINPUT", "LONG_BINPUT", "MEMOIZE"):
            if not stack or stack[-1] is MARK:
                raise ValueError(f"{name} with nothing to store")
            memo[len(memo) if name == "MEMOIZE" else arg] = stack[-1]
        elif name in ("GET", "BINGET", "LONG_BINGET"):
            if arg not in memo:
                raise ValueError(f"{name} of {arg!r}, which was never stored")
            stack.append(memo[arg])
        elif name == "MARK":
            stack.append(MARK)
        elif name == "DUP":
            stack.append(stack[-1])
        elif name == "STOP":
            return
        else:
            _apply(op, name, stack, max_values, max_depth)


def _apply(op, name: str, stack: list, max_values: int, max_depth: int) -> None:
    before = op.stack_before
    popped = []
    if pickletools.markobject in before:
        while stack and stack[-1] is not MARK:
            popped.append(stack.pop())
        if not stack:
            raise ValueError(f"{name} without a mark")
        stack.pop()
        count = before.index(pickletools.markobject)
    else:
        count = len(before)
    for _ in range(count):
        if not stack or stack[-1] is MARK:
            raise ValueError(f"{name} on too short a stack")
        popped.append(stack.pop())
    if name in MUTATORS:  # the object keeps its identity: every reference to it sees it grow
        target, added = popped[-1], popped[:-1]
        target.size += sum(c.size for c in added)
        target.depth = max([target.depth] + [c.depth + 1 for c in added])
        cells = [target]
    else:
        size = 1 + sum(c.size for c in popped)
        depth = 1 + max((c.depth for c in popped), default=0)
        cells = [_Cell(size, depth) for _ in op.stack_after]
    for cell in cells:
        if cell.size > max_values:
            raise TooLarge(f"it unfolds to more than {max_values:,} values")
        if cell.depth > max_depth:
            raise TooLarge(f"it nests more than {max_depth} levels deep")
        stack.append(cell)
