"""The mutations of ``fuzz_blueprints.py``: each takes a random generator, a blueprint as plain data (changed in
place) and a pool of block items from the whole zoo, and returns a short description or None when it
does not apply."""
from __future__ import annotations

import copy
import random
import re
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import yaml  # noqa: E402

from vitdsl.blocks.base import REGISTRY, leaf_types  # noqa: E402
from vitdsl.blueprint.load import _read_with_extends, item_names, zoo_dir  # noqa: E402

HUGE = [2**31, 2**40, 2**62, 2**63 - 1, 2**63, 2**64]
HOSTILE = [0, -1, 1, 2, 3, 7, True, False, None, "abc", "8", 0.5, 1.5, -0.5, 1e300, float("inf"),
           float("-inf"), float("nan"), [], [1], [2, 3], {}, {"a": 1}] + HUGE


def corpus() -> dict[str, dict]:
    """The zoo's blueprints and hybrid examples as plain data (``extends`` merged)."""
    out = {}
    for path in sorted(zoo_dir().glob("*.yaml")) + sorted((zoo_dir() / "examples").glob("*.yaml")):
        data, _ = _read_with_extends(path)
        out[path.stem] = data
    return out


def _blocks(items: list, found: list) -> list:
    """(list, index) of every block item at any depth."""
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            continue
        if isinstance(item.get("layers"), list):
            _blocks(item["layers"], found)
        elif _kind(item):
            found.append((items, i))
    return found


def _lists(items: list, found: list) -> list:
    """Every layer list at any depth (the top one first)."""
    found.append(items)
    for item in items:
        if isinstance(item, dict) and isinstance(item.get("layers"), list):
            _lists(item["layers"], found)
    return found


def _kind(item: dict) -> str | None:
    return next((k for k in item if k in REGISTRY), None)


def counted(data: dict) -> set[str]:
    """Parameters that set how many layers or list items there are (repeat counts, anything inside a
    ${...} expression): huge values there test the expansion and expression limits, not the blocks, and
    would stall the run, so they get only small hostile values."""
    found: set[str] = set()

    def walk(v: Any, in_count: bool) -> None:
        if isinstance(v, dict):
            for k, x in v.items():
                walk(x, in_count or k in ("repeat", "stages", "parallel"))
        elif isinstance(v, list):
            for x in v:
                walk(x, in_count)
        elif isinstance(v, str) and v.startswith("$") and (in_count or v.startswith("${")):
            found.update(re.findall(r"[A-Za-z_][A-Za-z_0-9]*", v))

    walk(data, False)
    return found


SMALL = [0, -1, 1, 2, 3, True, False, None, "abc", 1.5, [], float("nan")]
# how often a value is plainly hostile (wrong type, inf, huge) rather than of the field's type and near its
# old value; lower it (--hostile) for cases that get past the field checks to the shape rules and the build
SETTINGS = {"hostile": 0.15}


def _small(rng: random.Random, v: Any) -> Any:
    if isinstance(v, int) and not isinstance(v, bool):
        return rng.choice(SMALL + [v + 1, v - 1, v * 2])
    return rng.choice(SMALL)


def _near(rng: random.Random, v: Any) -> Any:
    """A value close to ``v`` that is likely to break a divisibility or range rule."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return rng.choice(HOSTILE)
    if isinstance(v, float):
        return rng.choice([v * 2, v / 2, -v, 0.0, 1.0, 1.0 - 1e-9, v + 1])
    return rng.choice([v + 1, v - 1, v * 2, v // 2, v * 3, -v, 0, 1, v * 1024])


def value_for(rng: random.Random, ann: Any, current: Any = None) -> Any:
    """A value for a field: usually of its type (a literal choice, a nearby number), sometimes hostile."""
    if rng.random() < SETTINGS["hostile"]:
        return rng.choice(HOSTILE)
    if current is not None and rng.random() < 0.5:
        if isinstance(current, list):
            return [_near(rng, x) for x in current]
        return _near(rng, current)
    from typing import Literal, get_args, get_origin

    literals = []
    stack = [ann]
    while stack:
        a = stack.pop()
        if get_origin(a) is Literal:
            literals += list(get_args(a))
        else:
            stack += [x for x in get_args(a) if x is not Ellipsis]
    leaves = leaf_types(ann)
    choices = []
    if literals:
        choices.append(lambda: rng.choice(literals))
    if bool in leaves:
        choices.append(lambda: rng.random() < 0.5)
    if int in leaves:
        choices.append(lambda: rng.choice([1, 2, 3, 4, 7, 8, 16, 32, 64, 0, -1]))
    if float in leaves:
        choices.append(lambda: rng.choice([0.0, 0.1, 0.5, 1.0, 1e-6, 2.0]))
    if list in leaves or tuple in leaves:
        choices.append(lambda: [rng.choice([1, 2, 3, 4, 8]) for _ in range(rng.choice([1, 2, 3]))])
    return rng.choice(choices)() if choices else rng.choice(HOSTILE)


# -- the mutations: each changes ``data`` in place and returns a short description -------------------------
def m_param(rng, data, pool):
    params = data.get("params") or {}
    if not params:
        return None
    k = rng.choice(sorted(params))
    if k in counted(data):
        params[k] = _small(rng, params[k])
    else:
        params[k] = rng.choice(HOSTILE) if rng.random() < 2.5 * SETTINGS["hostile"] else _near(rng, params[k])
    return f"params.{k}={params[k]!r}"


def m_variant_value(rng, data, pool):
    variants = data.get("variants") or {}
    if not variants:
        return None
    v = rng.choice(sorted(variants))
    if not variants[v]:
        return None
    k = rng.choice(sorted(variants[v]))
    variants[v][k] = (_small if k in counted(data) else _near)(rng, variants[v][k])
    return f"variants.{v}.{k}={variants[v][k]!r}"


def m_field(rng, data, pool):
    """Set one field of one block, existing or not yet given, to a value of (about) its type."""
    found = _blocks(data["layers"], [])
    if not found:
        return None
    items, i = rng.choice(found)
    item = items[i] = copy.deepcopy(items[i])
    kind = _kind(item)
    cls = REGISTRY[kind]
    fields = item[kind] if isinstance(item[kind], dict) else ({cls.shorthand: item[kind]}
                                                              if cls.shorthand and item[kind] is not None else {})
    if not cls.model_fields:
        return None
    name = rng.choice(sorted(cls.model_fields))
    fields[name] = value_for(rng, cls.model_fields[name].annotation, fields.get(name))
    item[kind] = fields
    return f"{kind}.{name}={fields[name]!r}"


def m_drop(rng, data, pool):
    lists = [x for x in _lists(data["layers"], []) if len(x) > 1]
    if not lists:
        return None
    items = rng.choice(lists)
    del items[rng.randrange(len(items))]
    return "drop an item"


def m_duplicate(rng, data, pool):
    items = rng.choice(_lists(data["layers"], []))
    i = rng.randrange(len(items))
    twin = copy.deepcopy(items[i])
    if isinstance(twin, dict) and rng.random() < 0.8:  # two items of one name in a list are refused at once
        twin.pop("name", None)
    items.insert(i, twin)
    return "duplicate an item"


def m_swap(rng, data, pool):
    lists = [x for x in _lists(data["layers"], []) if len(x) > 1]
    if not lists:
        return None
    items = rng.choice(lists)
    i = rng.randrange(len(items) - 1)
    items[i], items[i + 1] = items[i + 1], items[i]
    return "swap two items"


def m_insert(rng, data, pool):
    """Put a block from another zoo blueprint (its own fields, $references left out) somewhere."""
    items = rng.choice(_lists(data["layers"], []))
    item = copy.deepcopy(rng.choice(pool))
    items.insert(rng.randrange(len(items) + 1), item)
    return f"insert {_kind(item)}"


def m_replace_kind(rng, data, pool):
    found = _blocks(data["layers"], [])
    if not found:
        return None
    items, i = rng.choice(found)
    kind = _kind(items[i])
    other = copy.deepcopy(rng.choice(pool))
    if rng.random() < 0.5:  # the other kind with this block's fields
        new = rng.choice(sorted(REGISTRY))
        other = {new: copy.deepcopy(items[i][kind])}
    for k in ("name", "from", "share", "when"):
        if k in items[i]:
            other[k] = items[i][k]
    items[i] = other
    return f"{kind} -> {_kind(other)}"


def m_from(rng, data, pool):
    found = _blocks(data["layers"], [])
    if not found:
        return None
    items, i = rng.choice(found)
    names = item_names(data["layers"]) + ["input"]
    choice = rng.random()
    if choice < 0.4:
        items[i]["from"] = rng.choice(names)
    elif choice < 0.8:
        items[i]["from"] = [rng.choice(names) for _ in range(rng.choice([2, 2, 3]))]
    else:
        items[i].pop("from", None)
    return f"from={items[i].get('from')!r}"


def m_input(rng, data, pool):
    (kind, dims), = data["input"].items()
    dims = list(dims)
    j = rng.randrange(len(dims))
    dims[j] = _near(rng, dims[j]) if not isinstance(dims[j], str) else rng.choice([1, 2, 7, 15, 17, 33, 0])
    data["input"] = {kind: dims}
    return f"input {kind}={dims}"


def m_repeat(rng, data, pool):
    reps = [item for items in _lists(data["layers"], []) for item in items
            if isinstance(item, dict) and "repeat" in item]
    if not reps:
        return None
    item = rng.choice(reps)
    item["repeat"] = rng.choice([0, 1, 2, -1, 1.5, True, "x"])
    return f"repeat={item['repeat']!r}"


def m_input_kind(rng, data, pool):
    """Another input kind, with sizes of its rank taken from the old ones."""
    from vitdsl.blocks.shape import RANK

    (kind, dims), = data["input"].items()
    new = rng.choice(sorted(set(RANK) - {kind, "packed"}))
    dims = (list(dims) + [16, 16, 16])[:RANK[new]] if rng.random() < 0.7 else [rng.choice([1, 3, 8, 16, 17])
                                                                          for _ in range(RANK[new])]
    data["input"] = {new: dims}
    return f"input {new}={dims}"


def m_share(rng, data, pool):
    found = _blocks(data["layers"], [])
    if not found:
        return None
    items, i = rng.choice(found)
    names = item_names(data["layers"]) or ["x"]
    items[i]["share"] = rng.choice([rng.choice(names), {"with": rng.choice(names), "params": [rng.choice(
        ["norm", "qkv", "fc1", "weight", "gamma", "rel_pos_bias", "x.y"])]}, 3, None])
    return f"share={items[i]['share']!r}"


def m_output(rng, data, pool):
    names = item_names(data["layers"])
    if not names:
        return None
    data["output"] = rng.choice([rng.choice(names), rng.sample(names, min(len(names), rng.choice([1, 2, 3])))])
    return f"output={data['output']!r}"


def m_when(rng, data, pool):
    items = rng.choice(_lists(data["layers"], []))
    i = rng.randrange(len(items))
    if not isinstance(items[i], dict):
        return None
    items[i]["when"] = rng.choice([False, True, "${index == 0}", "${index > 0}", 1])
    return f"when={items[i]['when']!r}"


def m_item_form(rng, data, pool):
    """A malformed item: a list or number for fields, two blocks in one item, a bare name."""
    found = _blocks(data["layers"], [])
    if not found:
        return None
    items, i = rng.choice(found)
    kind = _kind(items[i])
    forms = [{kind: [1, 2]}, {kind: 3}, {kind: None}, {kind: {}, "mlp": {}}, kind, {kind: {"block": 1}},
             {**items[i], "repeat": 2}, {**items[i], "parallel": 2}]
    items[i] = rng.choice(forms)
    return f"item form {items[i]!r}"[:80]


MUTATIONS = [(m_param, 4), (m_variant_value, 1), (m_field, 12), (m_drop, 2), (m_duplicate, 2), (m_swap, 2),
             (m_insert, 3), (m_replace_kind, 2), (m_from, 2), (m_input, 2), (m_repeat, 1),
             (m_input_kind, 1), (m_share, 1), (m_output, 1), (m_when, 1), (m_item_form, 1)]


def block_pool(zoo: dict[str, dict]) -> list[dict]:
    """Block items of the whole zoo whose fields hold no $references, so they fit any blueprint."""
    pool = []
    for data in zoo.values():
        for items, i in _blocks(data["layers"], []):
            item = {k: v for k, v in items[i].items() if k not in ("from", "share", "when", "name")}
            if "$" not in yaml.safe_dump(item):
                pool.append(item)
    return pool


def objective_corpus() -> dict[str, dict]:
    """The zoo's objective blueprints as plain data, by name (``objectives/mae``)."""
    return {f"objectives/{path.stem}": _read_with_extends(path)[0]
            for path in sorted((zoo_dir() / "objectives").glob("*.yaml"))}


def m_objective(rng, data, pool):
    """An objective blueprint: one of its settings, an encoder override, or a block mutation of one part."""
    from vitdsl.objectives.design import kinds
    from vitdsl.objectives.spec import REGISTRY as OBJECTIVES

    kinds()
    choice = rng.random()
    if choice < 0.35 and isinstance(data.get("objective"), dict) and len(data["objective"]) == 1:
        (kind, fields), = data["objective"].items()
        cls = OBJECTIVES.get(kind)
        if cls is None or not cls.model_fields:
            return None
        fields = dict(fields) if isinstance(fields, dict) else {}
        name = rng.choice(sorted(cls.model_fields))
        fields[name] = value_for(rng, cls.model_fields[name].annotation, fields.get(name))
        data["objective"] = {kind: fields}
        return f"{kind}.{name}={fields[name]!r}"
    sets = data.get("encoder", {}).get("set") if isinstance(data.get("encoder"), dict) else None
    if choice < 0.55 and isinstance(sets, dict) and sets:
        k = rng.choice(sorted(sets))
        sets[k] = _small(rng, sets[k])  # the encoder's depths are among them: no thousands of layers
        return f"encoder.set.{k}={sets[k]!r}"
    parts = {k: v for k, v in (data.get("parts") or {}).items() if isinstance(v, dict) and v.get("layers")}
    if not parts:
        return None
    name = rng.choice(sorted(parts))
    op = rng.choice([m_field, m_field, m_drop, m_duplicate, m_swap, m_insert, m_replace_kind, m_input, m_from])
    what = op(rng, parts[name], pool)
    return what and f"parts.{name}: {what}"
