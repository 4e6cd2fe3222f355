"""Generate the block reference (``docs/blocks/*.md``) from the registered block specs.

    python tools/docgen.py           # write the pages
    python tools/docgen.py --check   # exit 1, listing stale pages, if they differ from the specs

Everything on a page comes from the spec class (docstring, ClassVars, pydantic fields) or from the
zoo blueprints' text, so the pages cannot drift from the code without ``--check`` noticing. The block pages
need only ``vitdsl.blocks``; docs/scaling.md (``docgen_scaling``) traces three designs on the meta device.
"""
from __future__ import annotations

import functools
import inspect
import json
import re
import sys
import types
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import annotated_types as at
import yaml
from pydantic_core import PydanticUndefined

# a development script of this repository: it documents this checkout's vitdsl, installed or not
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from docgen_readme import cell, readme  # noqa: E402  (beside this script)
from docgen_scaling import scaling_page  # noqa: E402  (beside this script)

import vitdsl  # noqa: E402
from vitdsl.blocks import REGISTRY, BlockSpec, MixerSpec, Shape  # noqa: E402
from vitdsl.blocks.base import CAPABILITIES  # noqa: E402
from vitdsl.blueprint.load import zoo_names  # noqa: E402
from vitdsl.schema import SHIPPED, blueprint_schema, schema_text  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs" / "blocks"
README = ROOT / "README.md"
ZOO = ROOT / "blueprints"
FAMILIES = ("embedding", "convolution", "attention", "mlp", "head", "misc")  # index order; others follow
ZOO_EXAMPLES = 3  # zoo snippets per page, from different blueprints
TITLES = {"mlp": "MLP"}

# One shape per kind, sized so that the zoo's usual patch and window sizes divide it; used only to
# find out which kind a block gives for each kind it takes.
SAMPLES = {"image": Shape.image(64, 224, 224), "volume": Shape("volume", (64, 8, 224, 224)),
           "tokens": Shape.tokens(197, 64, grid=(14, 14), prefix=1), "vector": Shape.vector(64),
           "images": Shape("images", (3, 224, 224)), "packed": Shape("packed", (196, 64), grid=(14, 14))}
# Tried when a block refuses the sample above (patchify folds only patch tokens without a cls token;
# ungroup needs groups).
FALLBACKS = {"tokens": Shape.tokens(196, 64, grid=(14, 14), groups=8), "vector": Shape("vector", (64,), groups=8)}


# -- types, constraints, defaults ---------------------------------------------------------------
def type_text(t: Any) -> str:
    """A field type as a YAML writer thinks of it: ``int | [int, int]``, ``"pre" | "post"``."""
    origin, args = get_origin(t), get_args(t)
    if origin is Annotated:
        return type_text(args[0])
    if origin in (Union, types.UnionType):
        return " | ".join(dict.fromkeys(type_text(a) for a in args))
    if origin is Literal:
        return " | ".join(json.dumps(a) for a in args)
    if origin is list:
        return f"[{type_text(args[0])}, ...]"
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return f"[{type_text(args[0])}, ...]"
        return "[" + ", ".join(type_text(a) for a in args) + "]"
    if origin is dict:
        return f"{{{type_text(args[0])}: {type_text(args[1])}}}"
    if t is type(None):
        return "null"
    return getattr(t, "__name__", str(t))


def constraints(t: Any, metadata: list) -> list[str]:
    """Bounds from the field and from inside its type (PositiveInt is ``int`` with ``> 0``)."""
    found = list(metadata)

    def walk(u):
        if get_origin(u) is Annotated:
            found.extend(get_args(u)[1:])
        for a in get_args(u):
            walk(a)

    walk(t)
    words = {at.Gt: ("gt", "> {}"), at.Ge: ("ge", "≥ {}"), at.Lt: ("lt", "< {}"), at.Le: ("le", "≤ {}"),
             at.MinLen: ("min_length", "at least {} item(s)"), at.MaxLen: ("max_length", "at most {} item(s)")}
    out = []
    for m in found:
        for kind, (attr, fmt) in words.items():
            if isinstance(m, kind):
                out.append(fmt.format(getattr(m, attr)))
    return list(dict.fromkeys(out))


def value_text(v: Any) -> str:
    return json.dumps(list(v) if isinstance(v, tuple) else v, ensure_ascii=False)


def rst_to_md(text: str) -> str:
    return re.sub(r"``(.+?)``", r"`\1`", text)


# -- what a block is ----------------------------------------------------------------------------
def doc(cls: type[BlockSpec]) -> str:
    return rst_to_md(inspect.cleandoc(cls.__doc__ or ""))


def summary(cls: type[BlockSpec]) -> str:
    """The first sentence of the docstring, which some specs wrap: their first line stops mid-sentence."""
    para = " ".join(doc(cls).split("\n\n")[0].split())
    # a sentence ends at a full stop before a capital or code, but not at an abbreviation's ("e.g. `x`")
    return re.split(r"(?<!e\.g\.)(?<!i\.e\.)(?<!\bcf\.)(?<!\bvs\.)(?<=\.)\s+(?=[A-Z`])", para)[0]


def own_fields(cls: type[BlockSpec]) -> list[str]:
    """The block's fields, its own first and the residual options shared with every mixer last."""
    shared = MixerSpec.model_fields if issubclass(cls, MixerSpec) else {}
    return sorted(cls.model_fields, key=lambda n: n in shared)  # stable: each part keeps its order


@functools.cache
def seen_kinds() -> dict[tuple[str, str], str]:
    """(block, input kind) → output kind, as the zoo's and the examples' blueprints use each block (their
    default variants, validated): real uses, where a synthetic sample may not fit (packed tokens, a region map)."""
    seen = {}
    for name in zoo_names(examples=True):
        for node, inputs, output in vitdsl.validate(name):
            if inputs:
                seen.setdefault((node.spec.block, inputs[0].kind), output.kind)
    return seen


def outputs(cls: type[BlockSpec], example: dict) -> list[tuple[str, str]]:
    """(input kind, output kind) for each kind the block takes: as the zoo uses it, else by running its shape
    rule on a sample."""
    spec = cls.model_validate(example)
    out = []
    for kind in cls.takes:
        given = seen_kinds().get((cls.block, kind), "?")  # "?": no use and no sample fits; say so, not guess
        for sample in (SAMPLES[kind], FALLBACKS.get(kind)) if given == "?" else ():
            try:
                given = spec.infer(*[sample] * max(1, cls.arity[0])).kind
                break
            except Exception:
                continue
        out.append((kind, given))
    return out


def kinds_text(pairs: list[tuple[str, str]]) -> str:
    return ", ".join(f"{i} → {o}" for i, o in pairs)


# -- the zoo ------------------------------------------------------------------------------------
def zoo_usages(block: str) -> list[tuple[str, str, dict]]:
    """(blueprint file, the item's text as written, its fields with plain $params filled in) for the
    first use of ``block`` in each zoo blueprint, found by scanning the text."""
    start = re.compile(rf"^(\s*)- {re.escape(block)}:(\s|$)")
    found = []
    for path in sorted(ZOO.glob("*.yaml")):
        lines = path.read_text().splitlines()
        for i, line in enumerate(lines):
            m = start.match(line)
            if not m:
                continue
            indent = len(m.group(1))
            end = i + 1
            while end < len(lines) and lines[end].strip() and len(lines[end]) - len(lines[end].lstrip()) > indent:
                end += 1
            text = "\n".join(line[indent:] for line in lines[i:end])
            if text not in (u[1] for u in found):  # zoo files often share an item verbatim
                found.append((path.name, text, _fields(text, block, path)))
            break
    return found


def _fields(text: str, block: str, path: Path) -> dict:
    """The item's fields with ``$name`` references replaced by the blueprint's default params
    (expressions and unknown names are dropped), so required values can come from real use."""
    try:
        item = yaml.safe_load(text)[0]
        params = (yaml.safe_load(path.read_text()) or {}).get("params") or {}
    except (yaml.YAMLError, AttributeError, IndexError, KeyError):
        return {}
    fields = item.get(block) if isinstance(item, dict) else None
    if not isinstance(fields, dict):
        return {}

    def fill(v):
        if isinstance(v, list):
            v = [fill(x) for x in v]
            return None if None in v else v
        if isinstance(v, str) and v.startswith("$"):
            return params.get(v[1:])  # ${...} and unknown names give None
        return v

    return {k: fv for k, fv in ((k, fill(v)) for k, v in fields.items()) if fv is not None}


def placeholder(t: Any) -> Any:
    """A valid-looking value of a type, for required fields the zoo does not show."""
    origin, args = get_origin(t), get_args(t)
    if origin is Annotated:
        return placeholder(args[0])
    if origin in (Union, types.UnionType):
        return placeholder(next(a for a in args if a is not type(None)))
    if origin is Literal:
        return args[0]
    if origin in (list, tuple):
        return [placeholder(a) for a in args if a is not Ellipsis]
    return {int: 16, float: 1.0, bool: True, str: "name"}.get(t, None)


def minimal(cls: type[BlockSpec], usages: list[tuple[str, str, dict]]) -> dict:
    """The required fields, valued as in the first zoo use that gives them (else a placeholder)."""
    out = {}
    for name, f in cls.model_fields.items():
        if f.is_required():
            given = [u[2][name] for u in usages if name in u[2]]
            out[name] = given[0] if given else placeholder(f.annotation)
    cls.model_validate(out)  # a broken example is a docgen bug: fail loudly
    return out


def flow(value: Any) -> str:
    return yaml.safe_dump(value, default_flow_style=True, sort_keys=False, width=10 ** 6,
                          allow_unicode=True).strip().removesuffix("\n...").strip()


# -- pages --------------------------------------------------------------------------------------
def page(cls: type[BlockSpec]) -> str:
    usages = zoo_usages(cls.block)
    example = minimal(cls, usages)
    lo, hi = cls.arity
    arity = str(lo) if lo == hi else f"{lo} or more" if hi is None else f"{lo} to {hi}"
    source = cls.__module__.replace(".", "/") + ".py"
    out = [f"<!-- generated by `python tools/docgen.py` from {source}; do not edit -->", "",
           f"# `{cls.block}`", "", doc(cls), "",
           f"- **Family:** {cls.family}",
           *(["- **Capabilities:** " + "; ".join(f"`{c}` ({CAPABILITIES[c].split(':')[0]})"
                                                  for c in sorted(cls.capabilities))] if cls.capabilities else []),
           f"- **Takes → gives:** {kinds_text(outputs(cls, example))}",
           f"- **Inputs:** {arity}" + (" (name them with `from: [a, b]`)" if lo > 1 else "")]
    if cls.shorthand:
        field = cls.model_fields[cls.shorthand]
        value = field.default if not field.is_required() else example[cls.shorthand]
        out.append(f"- **Shorthand:** `- {cls.block}: {flow(value)}` sets field `{cls.shorthand}`")
    out += ["", "## Fields", "", "| Field | Type | Default | Description |", "| --- | --- | --- | --- |"]
    for name in own_fields(cls):
        f = cls.model_fields[name]
        typ = f"`{type_text(f.annotation)}`"
        bounds = constraints(f.annotation, f.metadata)
        if bounds:
            typ += " (" + ", ".join(bounds) + ")"
        default = "required" if f.default is PydanticUndefined else f"`{value_text(f.default)}`"
        out.append(f"| `{name}` | {cell(typ)} | {cell(default)} | {cell(f.description or '')} |")
    if issubclass(cls, MixerSpec):
        shared = ", ".join(f"`{n}`" for n in MixerSpec.model_fields)
        out += ["", f"The last fields ({shared}) are the residual options every mixer block shares: "
                    + rst_to_md(" ".join(inspect.cleandoc(MixerSpec.__doc__).split("\n\n", 1)[-1].split()))]
    out += ["", "## Example", "", "```yaml", f"- {cls.block}: {flow(example)}"]
    if lo > 1:
        out.append("  from: [" + ", ".join(f"branch_{i}" for i in range(lo)) + "]")
    out.append("```")
    if usages:
        out += ["", "In the zoo:"]
        for file, text, _ in usages[:ZOO_EXAMPLES]:
            out += ["", f"[`blueprints/{file}`](../../blueprints/{file}):", "", "```yaml", text, "```"]
    return "\n".join(out) + "\n"


def index() -> str:
    by_family: dict[str, list[type[BlockSpec]]] = {}
    for cls in REGISTRY.values():
        by_family.setdefault(cls.family, []).append(cls)
    order = [f for f in FAMILIES if f in by_family] + sorted(set(by_family) - set(FAMILIES))
    out = ["<!-- generated by `python tools/docgen.py`; do not edit -->", "", "# Blocks", "",
           "Every block a blueprint can use, grouped by family. Each page is generated from the block's "
           "spec; see [the blueprint format](../format.md) for how layers are written.", ""]
    for family in order:
        out += [f"## {TITLES.get(family, family.capitalize())}", "", "| Block | Summary | Takes → gives |",
                "| --- | --- | --- |"]
        for cls in sorted(by_family[family], key=lambda c: c.block):
            pairs = outputs(cls, minimal(cls, zoo_usages(cls.block)))
            out.append(f"| [`{cls.block}`]({cls.block}.md) | {cell(summary(cls))} | {cell(kinds_text(pairs))} |")
        out.append("")
    return "\n".join(out)


def objectives_page() -> str:
    """docs/objectives.md: every objective kind with its settings, parts and the values it gives them."""
    from vitdsl.objectives.design import kinds

    out = ["<!-- generated by `python tools/docgen.py`; do not edit -->", "", "# Objectives", "",
           "An objective blueprint trains an encoder blueprint: `objective:` names one kind below with its "
           "settings, `encoder:` the blueprint (a zoo name, a path, or inline, with `set:` overrides), and "
           "`parts:` the objective's own networks, each an `input` and `layers` from the block library. "
           "Parts may use the values the objective gives them (`$patches`, …) besides the blueprint's params. "
           "See [the format](format.md#objectives) and `blueprints/objectives/`.", ""]
    for name, cls in sorted(kinds().items()):
        out += [f"## {name}", "", rst_to_md(inspect.cleandoc(cls.__doc__ or "")), ""]
        if cls.reference:
            out += [f"Reproduces the loss of `{cls.reference}` exactly (same weights, same randomness).", ""]
        out += ["| setting | type | default | description |", "| --- | --- | --- | --- |"]
        for field, info in cls.model_fields.items():
            default = "required" if info.is_required() else value_text(info.default)
            bounds = constraints(info.annotation, info.metadata)
            out.append(f"| `{field}` | {cell(type_text(info.annotation))} | {cell(default)} | "
                       f"{cell(rst_to_md(info.description or ''))}"
                       f"{cell(' (' + ', '.join(bounds) + ')') if bounds else ''} |")
        out.append("")
        if cls.parts:
            out += ["| part | what it does |", "| --- | --- |"]
            out += [f"| `{p}`{' (optional)' if p in cls.optional_parts else ''} | {cell(rst_to_md(what))} |"
                    for p, what in cls.parts.items()]
            out.append("")
        if cls.provides:
            out += ["Values for the parts: " + "; ".join(f"`${k}` {v}" for k, v in cls.provides.items()) + ".", ""]
    return "\n".join(out + EXPORT)


EXPORT = ["## Export", "",
          "Every objective's forward is one graph for `torch.compile(fullgraph=True)` (no graph break) and "
          "exports with `torch.export.export` with a dynamic batch; under the same `torch.manual_seed` the "
          "exported program draws the same masks as the module, so it gives the same loss. DINO's and EsViT's "
          "views and distill's teacher are traced into the graph, so they must be traceable themselves "
          "(the teacher is traced in eval mode unless `teacher_eval: false`); the moving averages "
          "(`update_moving_average`) are a separate step, not part of the graph. The ONNX (dynamo) exporter "
          "takes every objective, and onnxruntime gives eager's loss for dino, distill, mae, mp3, mpp and "
          "simmim (`tests/test_export_objectives.py`), its random masks drawn by onnxruntime's generator, "
          "not torch's. EsViT's runs too, but onnxruntime normalises with the batch norms' running "
          "statistics even in training mode (CvT's conv projections have batch norms), so it gives the loss "
          "of `model.eval()`. DINO's and EsViT's default views (kornia's random augmentations) are not "
          "covered: pass your own.", "",
          "```python",
          "import torch",
          "import vitdsl",
          "",
          "small = {\"encoder.image_size\": 32, \"encoder.patch\": 8, \"encoder.dim\": 32, \"encoder.depth\": 1,",
          "         \"encoder.heads\": 2, \"encoder.mlp\": 64}",
          "simmim = vitdsl.build(\"objectives/simmim\", overrides=small)",
          "batch = torch.export.Dim(\"batch\", min=2, max=1024)",
          "program = torch.export.export(simmim, (torch.rand(2, 3, 32, 32),), dynamic_shapes=({0: batch},))",
          "images = torch.rand(8, 3, 32, 32)",
          "torch.manual_seed(1)",
          "exported = program.module()(images)",
          "torch.manual_seed(1)",
          "assert abs(exported.item() - simmim(images).item()) <= 1e-5",
          "```", ""]


def pages() -> dict[Path, str]:
    out = {DOCS / f"{name}.md": page(cls) for name, cls in sorted(REGISTRY.items())}
    out[DOCS / "index.md"] = index()
    out[README] = readme()
    out[ROOT / "docs" / "objectives.md"] = objectives_page()
    out[ROOT / "docs" / "scaling.md"] = scaling_page()
    out[SHIPPED] = schema_text(blueprint_schema())
    return out


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    check = "--check" in argv
    wanted = pages()
    extra = sorted(set(DOCS.glob("*.md")) - set(wanted)) if DOCS.is_dir() else []  # pages of removed blocks
    stale = [p for p, text in wanted.items() if not p.is_file() or p.read_text() != text] + extra
    if check:
        for p in stale:
            print(f"stale: {p.relative_to(ROOT)}")
        if stale:
            print("run `python tools/docgen.py` to regenerate them")
        return 1 if stale else 0
    DOCS.mkdir(parents=True, exist_ok=True)
    for p in stale:
        if p in wanted:
            p.write_text(wanted[p])
        else:
            p.unlink()
    print(f"{len(stale)} of {len(wanted)} generated files (block pages, tables, the schema) written or removed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
