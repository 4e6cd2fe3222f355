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
reference that stacks all layers' memories in one tensor filling our per-layer ones).
A template of ``None`` (``DERIVED``) drops the tensor: a buffer the blueprint computes itself (index
tables). ``ZERO`` drops it too but requires it to be all zeros: a constant the blueprint does not store
(vit-pytorch's bias-free LayerNorm keeps its bias as a zero buffer). Any other reference tensor without
a home, or any of ours left unfilled, is an error. Keys of ours that hold one tied tensor (a block that
shares another's weights) are filled together, by a reference tensor that maps to any one of them.
"""
from __future__ import annotations

import re
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


def import_state_dict(model: nn.Module, reference: dict[str, torch.Tensor], rules: list[Rule],
                      ordinals: dict[str, str] | None = None, *, source: str = "reference") -> dict[str, str]:
    """Copy ``reference`` into ``model``; returns the key map (reference key → our key)."""
    ours = model.state_dict()
    alias = _aliases(model)
    table = _ordinals(list(ours), ordinals or {})
    mapping: dict[str, str] = {}
    parts: dict[str, dict[int, str]] = {}  # our key -> {part index: reference key}
    sliced: dict[str, torch.Tensor] = {}  # our key -> its slice of a split reference tensor
    problems: list[str] = []
    for key, tensor in reference.items():
        target = rewrite(key, rules, table)
        if target is None:
            problems.append(f"{source} tensor '{key}' {tuple(tensor.shape)} matches no rule")
            continue
        if target.startswith(DROP):
            if target.endswith(ZERO) and tensor.count_nonzero():
                problems.append(f"{source} tensor '{key}' is dropped as a constant zero, but it is not zero")
            continue
        if "*" in target:
            problems += _split(key, tensor, target, ours, mapping, sliced)
            continue
        reshaped = target.startswith(RESHAPE)
        target = target.removeprefix(RESHAPE)
        part = PART.match(target)
        if part:
            target = part.group(1) + part.group(3)
        target = alias.get(target, target)
        if target not in ours:
            problems.append(f"{source} tensor '{key}' maps to '{target}', which the blueprint does not have")
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
            continue
        if not (_fits(ours[target].shape, tensor.shape) or reshaped and ours[target].numel() == tensor.numel()):
            problems.append(f"'{key}' {tuple(tensor.shape)} does not fit '{target}' {tuple(ours[target].shape)}")
            continue
        mapping[key] = target
    joined: dict[str, torch.Tensor] = {}
    for target, slots in parts.items():
        keys = [slots[i] for i in sorted(slots)]
        if sorted(slots) != list(range(len(slots))):
            problems.append(f"'{target}' gets parts {sorted(slots)}, not 0..{len(slots) - 1}")
            continue
        pieces = [reference[k].detach() for k in keys]
        if all(p.dim() == 0 for p in pieces):
            if any(not torch.equal(p, pieces[0]) for p in pieces):
                problems.append(f"scalar parts {keys} of '{target}' differ")
                continue
            joined[target] = pieces[0]
            continue
        if len({p.shape[1:] for p in pieces}) != 1:
            problems.append(f"parts {keys} of '{target}' differ in shape beyond the first dimension")
            continue
        whole = torch.cat(pieces)
        if not _fits(ours[target].shape, whole.shape):
            problems.append(f"{' + '.join(keys)} {tuple(whole.shape)} does not fit '{target}' "
                            f"{tuple(ours[target].shape)}")
            continue
        joined[target] = whole
    filled = set(mapping.values()) | set(sliced)
    missing = [k for k in ours if alias.get(k, k) not in filled]
    problems += [f"blueprint tensor '{k}' {tuple(ours[k].shape)} gets no {source} weights" for k in missing]
    if problems:
        shown = "\n  ".join(problems[:12]) + (f"\n  ... and {len(problems) - 12} more" if len(problems) > 12 else "")
        raise VitdslError(f"cannot import weights ({len(problems)} problem(s)):\n  {shown}",
                          hint="the blueprint and the reference must describe the same architecture")
    new_state = {t: v.detach() for k, v in reference.items() if k in mapping and (t := mapping[k]) not in parts}
    new_state.update(joined)
    new_state.update(sliced)
    new_state.update({k: new_state[first] for k, first in alias.items() if first in new_state})
    model.load_state_dict({k: v.reshape(ours[k].shape) for k, v in new_state.items()}, strict=True)
    return mapping


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
    """Slices of ``tensor`` along dim 0 onto our keys matching ``target`` (``*``: a number), in order."""
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
