"""`$name` references and `${expression}` arithmetic, evaluated without ``eval``.

A string value that starts with ``$`` is never taken literally: ``$dims`` is the value of the
parameter ``dims``; ``${dim * 4}`` or ``${2 if index == 0 else 1}`` is a small Python expression over
parameters. Only arithmetic, comparisons, ``and``/``or``/``not``, conditionals, indexing, list
literals, list comprehensions with one ``for`` (``[d // 2 for d in dims if d > 8]``) and the functions
below are allowed. ``and``/``or`` short-circuit and give an operand, as in Python.

A blueprint is untrusted input, so every expression runs on a budget (see :mod:`.limits`): its length,
the operations it takes, the size of the integers and lists it makes, are checked before the work is
done — ``${9**9**9}`` or ``${[0] * 10**9}`` is refused at once, not after the memory is gone.
"""
from __future__ import annotations

import ast
import functools
import operator
from typing import Any, Callable, Mapping

from ..errors import VitdslError, clip, suggest
from . import limits

_BIN = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
        ast.Div: operator.truediv, ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod,
        ast.Pow: operator.pow}
_FAILURES = (TypeError, ValueError, ZeroDivisionError, OverflowError, IndexError, KeyError)
INT_BITS = 64  # integers an expression may make: what a tensor size or a count can hold
_UNARY = {ast.USub: operator.neg, ast.UAdd: operator.pos, ast.Not: operator.not_}
_CMP = {ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le,
        ast.Gt: operator.gt, ast.GtE: operator.ge, ast.In: lambda a, b: a in b,
        ast.NotIn: lambda a, b: a not in b}
MAX_RANGE = limits.SEQUENCE  # a longer range is surely a mistake, and would stall validation


def _range(*args: int) -> list[int]:
    r = range(*args)
    try:
        n = f"{len(r):,}"
    except OverflowError:  # more than a C ssize_t can count
        n = "2**63 or more"
    if n == "2**63 or more" or len(r) > MAX_RANGE:
        raise VitdslError(f"range({', '.join(map(str, args))}) has {n} numbers, more than {MAX_RANGE:,}")
    return list(r)


def _sized(value: Any, text: str) -> Any:
    """``value`` when it is a number or list an expression may make; the refusal otherwise. inf and nan
    pass: they cost nothing here, and the field that takes one refuses it by its block and field name."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > INT_BITS - 1:
        raise VitdslError(f"'{text}' makes an integer beyond 64 bits")
    if isinstance(value, (list, tuple, str)) and len(value) > limits.SEQUENCE:
        raise VitdslError(f"'{text}' makes a sequence of {len(value):,} items, more than {limits.SEQUENCE:,}")
    return value


def _cheap(op: type, left: Any, right: Any, text: str) -> None:
    """Refuse, before computing it, an operation whose result would be huge."""
    def length(v):
        return len(v) if isinstance(v, (list, tuple, str)) else None

    if op is ast.Pow and isinstance(left, int) and isinstance(right, int) and right > 0 and abs(left) > 1:
        if right * (abs(left).bit_length() - 1) > INT_BITS:
            raise VitdslError(f"'{text}' makes an integer beyond 64 bits")
    if op is ast.Mult:
        seq, n = (left, right) if length(left) is not None else (right, left)
        if length(seq) is not None and isinstance(n, int) and length(seq) * max(n, 0) > limits.SEQUENCE:
            raise VitdslError(f"'{text}' makes a sequence of more than {limits.SEQUENCE:,} items")
    if op in (ast.Mod, ast.FloorDiv) and isinstance(left, (str, bytes)):
        raise VitdslError(f"'{text}': text formatting is not allowed in expressions")


FUNCTIONS: dict[str, Callable] = {"min": min, "max": max, "int": int, "float": float,
                                  "round": round, "len": len, "abs": abs, "sum": sum,
                                  "range": _range, "sorted": sorted}


def is_reference(value: Any) -> bool:
    return isinstance(value, str) and value.startswith("$")


@functools.lru_cache(maxsize=4096)
def _parse(source: str) -> ast.Expression:
    """Parsed once per text: a zoo repeats the same few expressions thousands of times (the tree is only read)."""
    return ast.parse(source, mode="eval")


def evaluate(text: str, lookup: Callable[[str], Any], names: Callable[[], list[str]]) -> Any:
    """Evaluate a ``$name`` or ``${expr}`` string; ``lookup`` gives a parameter's value."""
    shown = clip(text)
    if len(text) > limits.EXPRESSION_CHARS:
        raise VitdslError(f"an expression of {len(text):,} characters is longer than {limits.EXPRESSION_CHARS:,}",
                          hint="split it into parameters that refer to each other")
    if text.startswith("${"):
        if not text.endswith("}"):
            raise VitdslError(f"expression '{shown}' is not closed", hint="write ${...} with a closing brace")
        source = text[2:-1]
    else:
        source = text[1:]
        if not source.isidentifier():
            raise VitdslError(f"'{shown}' is not a parameter reference",
                              hint="write $name for a parameter, ${...} for arithmetic")
    try:
        tree = _parse(source.strip())
    except (SyntaxError, ValueError):
        raise VitdslError(f"cannot parse expression '{shown}'") from None
    except (RecursionError, MemoryError):
        raise VitdslError(f"expression '{shown}' nests too deeply") from None
    try:
        return _Eval(lookup, names, shown).visit(tree.body)
    except RecursionError:
        raise VitdslError(f"expression '{shown}' nests too deeply") from None


class _Eval(ast.NodeVisitor):
    def __init__(self, lookup, names, text):
        self.lookup, self.names, self.text = lookup, names, text
        self.steps = 0

    def spend(self, steps: int) -> None:
        self.steps += steps
        if self.steps > limits.EXPRESSION_STEPS:
            raise VitdslError(f"expression '{self.text}' takes more than {limits.EXPRESSION_STEPS:,} steps")

    def visit(self, node):
        self.spend(1)
        return _sized(super().visit(node), self.text)

    def generic_visit(self, node):
        raise VitdslError(f"'{clip(ast.unparse(node), 40)}' is not allowed in expression '{self.text}'",
                          hint="expressions may use arithmetic, comparisons, conditionals, indexing, list "
                               "comprehensions (one for) and "
                               + ", ".join(FUNCTIONS))

    def visit_Constant(self, node):
        return node.value

    def visit_Name(self, node):
        if node.id in ("True", "False", "None"):
            return {"True": True, "False": False, "None": None}[node.id]
        return self.lookup(node.id)

    def visit_BinOp(self, node):
        op = _BIN.get(type(node.op))
        if op is None:
            return self.generic_visit(node)
        left, right = self.visit(node.left), self.visit(node.right)
        _cheap(type(node.op), left, right, self.text)
        try:
            return op(left, right)
        except OverflowError:
            raise VitdslError(f"'{self.text}' makes a number too large to hold") from None
        except _FAILURES as e:
            raise VitdslError(f"cannot evaluate '{self.text}': {e}") from None

    def visit_UnaryOp(self, node):
        op = _UNARY.get(type(node.op))
        if op is None:
            return self.generic_visit(node)
        try:
            return op(self.visit(node.operand))
        except _FAILURES as e:
            raise VitdslError(f"cannot evaluate '{self.text}': {e}") from None

    def visit_BoolOp(self, node):
        """Python's rule: the first operand that decides (false for ``and``, true for ``or``), else the last."""
        for value in node.values[:-1]:
            result = self.visit(value)
            if bool(result) != isinstance(node.op, ast.And):
                return result
        return self.visit(node.values[-1])

    def visit_Compare(self, node):
        left = self.visit(node.left)
        for op, comp in zip(node.ops, node.comparators):
            fn = _CMP.get(type(op))
            if fn is None:
                return self.generic_visit(node)
            right = self.visit(comp)
            try:
                holds = fn(left, right)
            except _FAILURES as e:
                raise VitdslError(f"cannot evaluate '{self.text}': {e}") from None
            if not holds:
                return False
            left = right
        return True

    def visit_IfExp(self, node):
        return self.visit(node.body) if self.visit(node.test) else self.visit(node.orelse)

    def visit_List(self, node):
        return [self.visit(e) for e in node.elts]

    visit_Tuple = visit_List

    def visit_Subscript(self, node):
        value, index = self.visit(node.value), self.visit(node.slice)
        try:
            return value[index]
        except _FAILURES as e:
            raise VitdslError(f"cannot index in '{self.text}': {e}") from None

    def visit_Call(self, node):
        if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS or node.keywords:
            return self.generic_visit(node)
        args = [self.visit(a) for a in node.args]
        if node.func.id in ("sum", "sorted", "min", "max", "len") and args and isinstance(args[0], (list, tuple)):
            self.spend(len(args[0]))  # their work grows with the list
        try:
            return FUNCTIONS[node.func.id](*args)
        except _FAILURES as e:
            raise VitdslError(f"cannot evaluate '{self.text}': {e}") from None

    def visit_ListComp(self, node):
        gen = node.generators[0]
        if len(node.generators) != 1 or gen.is_async or not isinstance(gen.target, ast.Name):
            return self.generic_visit(node)
        items = self.visit(gen.iter)
        if not isinstance(items, (list, tuple, str)):
            raise VitdslError(f"cannot evaluate '{self.text}': '{ast.unparse(gen.iter)}' is not a list")
        outer, name, out = self.lookup, gen.target.id, []
        try:
            for item in items:  # the loop variable shadows a parameter of that name
                self.lookup = lambda n, item=item: item if n == name else outer(n)
                if all(self.visit(c) for c in gen.ifs):
                    out.append(self.visit(node.elt))
        finally:
            self.lookup = outer
        return out


def resolve_params(raw: Mapping[str, Any], scope: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Resolve parameters that refer to each other (``mlp: ${dim * 4}``), in any order.

    ``scope`` holds values already known (outer parameters); raw entries shadow them.
    """
    scope = dict(scope or {})
    done: dict[str, Any] = {}
    active: list[str] = []

    def names():
        return sorted(set(scope) | set(raw))

    def lookup(name: str):
        if name in done:
            return done[name]
        if name in raw:
            if name in active:
                raise VitdslError("parameters refer to each other in a cycle: "
                                  + " -> ".join(active[active.index(name):] + [name]))
            active.append(name)
            try:
                done[name] = substitute(raw[name], lookup, names)
            except VitdslError as e:
                if not hasattr(e, "param"):
                    e.param = name
                raise
            active.pop()
            return done[name]
        if name in scope:
            return scope[name]
        raise VitdslError(f"unknown parameter '${name}'", hint=suggest(name, names(), "parameters"))

    for key in raw:
        lookup(key)
    return {**scope, **done}


def substitute(value: Any, lookup: Callable[[str], Any], names: Callable[[], list[str]],
               path: tuple = ()) -> Any:
    """Replace every reference inside ``value``; an error records the sub-path where it happened
    (``error.subpath``) so the caller can point at the exact line."""
    if is_reference(value):
        try:
            return evaluate(value, lookup, names)
        except VitdslError as e:
            if not hasattr(e, "subpath"):
                e.subpath = path
            raise
    if isinstance(value, list):
        return [substitute(v, lookup, names, path + (i,)) for i, v in enumerate(value)]
    if isinstance(value, dict):
        return {k: substitute(v, lookup, names, path + (k,)) for k, v in value.items()}
    return value
