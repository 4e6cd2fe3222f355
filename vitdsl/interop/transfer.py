"""Copy a reference state_dict into a compiled blueprint through key-rewrite rules, strictly.

A rule rewrites a key prefix: ``(regex, template)``; the regex must match at the start of the
reference key, the matched part is replaced by ``template`` (with ``\\1`` groups) and the rest of the
key is kept. ``<name:INDEX>`` in a template stands for the INDEX-th entry of an *ordinal*: the
ordered list of distinct prefixes of our keys that match a regex (so a reference's flat layer
index can address our nested ``stages.S.blocks.I``). Tensors whose shapes differ only by
singleton dimensions (Linear (o, i) vs 1×1 conv (o, i, 1, 1), (1, n, d) vs (n, d)) are reshaped. A
template that starts with ``<reshape>`` lets the tensor take our shape whatever its own, with the same number
of values in the same (row-major) order: a conv patch embedding's (D, C, p, p) kernel is our linear
projection (D, C·p·p) of patch vectors in (c p1 p2) order; only where a rule says so, so a transposed tensor
elsewhere is still an error.
A template may mark a part: ``qkv[1].`` sends the tensor to ``qkv.`` as the second block of a
concatenation along the first dimension (a reference with separate ``to_q`` and ``to_kv`` filling
our fused ``qkv``); scalar parts (BatchNorm's ``num_batches_tracked``) must agree and are kept once.
A template with ``*`` splits the tensor: ``blocks.*.attn.memories`` sends its slices along the first
dimension to our keys of that pattern (``*`` a number), in numeric order; the counts must agree (a
reference that stacks all layers' memories in one tensor filling our per-layer ones). ``<split=N>`` in front
splits along dimension N instead (timm's RoPE-Mixed frequencies, (2, depth, heads, d/2), one block's per slice).
A template of ``None`` (``DERIVED``) drops the tensor: a buffer the blueprint computes itself (index
tables). ``ZERO`` drops it too but requires it to be all zeros: a constant the blueprint does not store
(vit-pytorch's bias-free LayerNorm keeps its bias as a zero buffer). Any other reference tensor without
a home, or any of ours left unfilled, is an error. Keys of ours that hold one tied tensor (a block that
shares another's weights) are filled together, by a reference tensor that maps to any one of them.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Iterable

import torch
from torch import nn

from ..errors import VitdslError

Rule = tuple[str, str | None]
DERIVED = None
ZERO = "<zero>"
DROP = "\x00drop"  # what rewrite answers for a rule that drops the tensor (no key contains NUL)
RESHAPE = "<reshape>"


def _squeezed(shape: Iterable[int]) -> tuple[int, ...]:
    return tuple(d for d in shape if d != 1)


def _ordinals(keys: list[str], patterns: dict[str, str]) -> dict[str, list[str]]:
    out = {}
    for name, pattern in patterns.items():
        seen: list[str] = []
        rx = re.compile(pattern)
        for k in keys:
            m = rx.match(k)
            if m and m.group(0) not in seen:
                seen.append(m.group(0))
        out[name] = seen
    return out


def rewrite(key: str, rules: list[Rule], ordinals: dict[str, list[str]]) -> str | None:
    """Our key for ``key``: None when no rule matches, DROP (+ ZERO) when the matching rule drops it."""
    for pattern, template in rules:
        m = re.match(pattern, key)
        if not m:
            continue
        if template is None:
            return DROP
        if template == ZERO:
            return DROP + ZERO
        head = m.expand(template)

        def ordinal(t: re.Match) -> str:
            table = ordinals[t.group(1)]
            i = int(t.group(2))
            if i >= len(table):
                raise VitdslError(f"reference key '{key}' addresses {t.group(1)} #{i}, but the blueprint has "
                                  f"{len(table)}")
            return table[i]

        head = re.sub(r"<(\w+):(\d+)>", ordinal, head)
        return head + key[m.end():]
    return None


PART = re.compile(r"^(.*)\[(\d+)\](\..*)$")


@dataclass
class Row:
    """What became of one tensor: ``status`` is exact, reshaped (same values, singleton dimensions
    differ), derived (dropped by a rule: the blueprint computes it), misfit (its target has another
    shape), unplaced (its target is not in the blueprint), unmatched (no rule) or missing (ours, unfilled)."""

    reference: str | None
    ours: str | None
    status: str
    reference_shape: tuple[int, ...] | None
    our_shape: tuple[int, ...] | None
    note: str = ""


@dataclass
class Match:
    """The outcome of matching a reference state_dict against a model, before anything is loaded."""

    rows: list[Row]
    mapping: dict[str, str]  # reference key -> our key, for every tensor that is placed
    state: dict[str, torch.Tensor]  # our key -> the tensor to load, shaped as ours
    problems: list[str]
    aliases: dict[str, str] = field(default_factory=dict)  # our tied keys -> the key holding the tensor


def match_state_dict(model: nn.Module, reference: dict[str, torch.Tensor], rules: list[Rule],
                     ordinals: dict[str, str] | None = None, *, source: str = "reference") -> Match:
    """Where each ``reference`` tensor goes in ``model`` and what is left over; raises only for a rule
    table that is itself wrong, never for a mismatch (those are ``problems`` and rows)."""
    ours = model.state_dict()
    alias = _aliases(model)
    table = _ordinals(list(ours), ordinals or {})
    mapping: dict[str, str] = {}
    parts: dict[str, dict[int, str]] = {}  # our key -> {part index: reference key}
    sliced: dict[str, torch.Tensor] = {}  # our key -> its slice of a split reference tensor
    problems: list[str] = []
    rows: list[Row] = []

    def row(key, target, status, note=""):
        shape = tuple(ours[target].shape) if target in ours else None
        rows.append(Row(key, target, status, tuple(reference[key].shape), shape, note))

    for key, tensor in reference.items():
        try:
            target = rewrite(key, rules, table)
        except VitdslError as e:  # an ordinal past the blueprint's count: a layer the blueprint lacks
            problems.append(str(e))
            row(key, None, "unplaced", str(e))
            continue
        if target is None:
            problems.append(f"{source} tensor '{key}' {tuple(tensor.shape)} matches no rule")
            row(key, None, "unmatched", "matches no rule")
            continue
        if target.startswith(DROP):
            if target.endswith(ZERO) and tensor.count_nonzero():
                problems.append(f"{source} tensor '{key}' is dropped as a constant zero, but it is not zero")
                row(key, None, "unmatched", "dropped as a constant zero, but it is not zero")
            else:
                row(key, None, "derived", "a constant zero" if target.endswith(ZERO) else "computed by the blueprint")
            continue
        if "*" in target:
            found = _split(key, tensor, target, ours, mapping, sliced)
            problems += found
            for k, t in mapping.items():
                if k.startswith(key + "["):
                    rows.append(Row(k, t, "exact", tuple(sliced[t].shape), tuple(ours[t].shape), f"slice of '{key}'"))
            if found:
                row(key, None, "misfit", found[0])
            continue
        reshaped = target.startswith(RESHAPE)
        target = target.removeprefix(RESHAPE)
        part = PART.match(target)
        if part:
            target = part.group(1) + part.group(3)
        target = alias.get(target, target)
        if target not in ours:
            problems.append(f"{source} tensor '{key}' maps to '{target}', which the blueprint does not have")
            row(key, target, "unplaced", "the blueprint has no such tensor")
            continue
        if part:
            slots = parts.setdefault(target, {})
            if int(part.group(2)) in slots:
                problems.append(f"two {source} tensors map to part {part.group(2)} of '{target}'")
            slots[int(part.group(2))] = key
            mapping[key] = target
            continue
        if target in mapping.values():
            other = next(k for k, t in mapping.items() if t == target)
            if not _same(reference[other], tensor):  # one tensor under two keys: the reference ties them too
                problems.append(f"two {source} tensors map to '{target}'")
                row(key, target, "unplaced", f"'{other}' fills it already")
            else:
                row(key, target, "exact", f"the same tensor as '{other}'")
            continue
        if not (_fits(ours[target].shape, tensor.shape) or reshaped and ours[target].numel() == tensor.numel()):
            problems.append(f"'{key}' {tuple(tensor.shape)} does not fit '{target}' {tuple(ours[target].shape)}")
            row(key, target, "misfit", "does not fit")
            continue
        mapping[key] = target
        row(key, target, "exact" if tuple(tensor.shape) == tuple(ours[target].shape) else "reshaped")
    joined: dict[str, torch.Tensor] = {}
    for target, slots in parts.items():
        keys = [slots[i] for i in sorted(slots)]
        done = _join(target, slots, keys, reference, ours, problems)
        for i, k in enumerate(keys):
            status = "misfit" if done is None else "exact" if done.shape == ours[target].shape else "reshaped"
            row(k, target, status, f"part {i} of {len(keys)}")
        if done is not None:
            joined[target] = done
    filled = set(mapping.values()) | set(sliced)
    missing = [k for k in ours if alias.get(k, k) not in filled]
    problems += [f"blueprint tensor '{k}' {tuple(ours[k].shape)} gets no {source} weights" for k in missing]
    rows += [Row(None, k, "missing", None, tuple(ours[k].shape)) for k in missing if k not in alias]
    state = {t: v.detach() for k, v in reference.items() if k in mapping and (t := mapping[k]) not in parts}
    state.update(joined)
    state.update(sliced)
    state.update({k: state[first] for k, first in alias.items() if first in state})
    state = {k: v.reshape(ours[k].shape) for k, v in state.items()}
    return Match(rows, mapping, state, problems, alias)


def import_state_dict(model: nn.Module, reference: dict[str, torch.Tensor], rules: list[Rule],
                      ordinals: dict[str, str] | None = None, *, source: str = "reference") -> dict[str, str]:
    """Copy ``reference`` into ``model``; returns the key map (reference key → our key)."""
    found = match_state_dict(model, reference, rules, ordinals, source=source)
    problems = found.problems
    if problems:
        shown = "\n  ".join(problems[:12]) + (f"\n  ... and {len(problems) - 12} more" if len(problems) > 12 else "")
        raise VitdslError(f"cannot import weights ({len(problems)} problem(s)):\n  {shown}",
                          hint="the blueprint and the reference must describe the same architecture")
    model.load_state_dict(found.state, strict=True)
    return found.mapping


def _join(target: str, slots: dict[int, str], keys: list[str], reference: dict, ours: dict,
          problems: list[str]) -> torch.Tensor | None:
    """The parts of ``target`` concatenated (or the one value of scalar parts), or None with a problem."""
    if sorted(slots) != list(range(len(slots))):
        problems.append(f"'{target}' gets parts {sorted(slots)}, not 0..{len(slots) - 1}")
        return None
    pieces = [reference[k].detach() for k in keys]
    if all(p.dim() == 0 for p in pieces):
        if any(not torch.equal(p, pieces[0]) for p in pieces):
            problems.append(f"scalar parts {keys} of '{target}' differ")
            return None
        return pieces[0]
    if len({p.shape[1:] for p in pieces}) != 1:
        problems.append(f"parts {keys} of '{target}' differ in shape beyond the first dimension")
        return None
    whole = torch.cat(pieces)
    if not _fits(ours[target].shape, whole.shape):
        problems.append(f"{' + '.join(keys)} {tuple(whole.shape)} does not fit '{target}' "
                        f"{tuple(ours[target].shape)}")
        return None
    return whole


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.data_ptr() == b.data_ptr() and a.shape == b.shape and a.stride() == b.stride()


def _aliases(model: nn.Module) -> dict[str, str]:
    """Every state_dict key whose tensor an earlier key already holds (tied weights) -> that earlier key."""
    first: dict[int, str] = {}
    out = {}
    for key, tensor in model.state_dict(keep_vars=True).items():
        if id(tensor) in first:
            out[key] = first[id(tensor)]
        else:
            first[id(tensor)] = key
    return out


def _split(key: str, tensor: torch.Tensor, target: str, ours: dict, mapping: dict[str, str],
           sliced: dict[str, torch.Tensor]) -> list[str]:
    """Slices of ``tensor`` along dim 0 (or N, ``<split=N>``) onto our keys matching ``target`` (``*``: a number),
    in order."""
    axis = re.match(r"<split=(\d+)>", target)
    if axis:
        target, tensor = target[axis.end():], tensor.movedim(int(axis.group(1)), 0) if tensor.dim() else tensor
    rx = re.compile(re.escape(target).replace(r"\*", r"(\d+)"))
    found = sorted((tuple(int(g) for g in m.groups()), k) for k in ours if (m := rx.fullmatch(k)))
    n = tensor.shape[0] if tensor.dim() else 0
    if len(found) != n:
        return [f"'{key}' {tuple(tensor.shape)} splits into {n} slice(s), but the blueprint has {len(found)} "
                f"tensor(s) '{target}'"]
    problems = []
    for i, (_, ours_key) in enumerate(found):
        piece = tensor[i].detach()
        if ours_key in mapping.values() or ours_key in sliced:
            problems.append(f"two reference tensors map to '{ours_key}'")
        elif not _fits(ours[ours_key].shape, piece.shape):
            problems.append(f"'{key}'[{i}] {tuple(piece.shape)} does not fit '{ours_key}' "
                            f"{tuple(ours[ours_key].shape)}")
        else:
            mapping[f"{key}[{i}]"] = ours_key
            sliced[ours_key] = piece
    return problems


def _fits(have, given) -> bool:
    """Same shape up to singleton dimensions."""
    return tuple(have) == tuple(given) or (
        _numel(have) == _numel(given) and _squeezed(have) == _squeezed(given))


def _numel(shape) -> int:
    n = 1
    for d in shape:
        n *= d
    return n
