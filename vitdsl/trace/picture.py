"""Pictures of a checked graph, drawn without running the model (no torch): Mermaid text, Graphviz DOT, SVG
(DOT laid out by Graphviz's ``dot``) and an HTML page that draws the Mermaid text.

Repeats are folded exactly as in the summary's table (``rows.fold``): a run of identical iterations is one
box, ``blocks.0–11 ×12, identical``, around the blocks of its first iteration. An edge from a block outside
the run to any iteration is drawn to that first iteration (and from it, for an edge leaving the run); the
edges that chain one iteration to the next are what ``×12`` says, so they are not drawn. Each block is
labelled with its name (relative to the box it is in), its block type and pattern, and its output shape.
"""
from __future__ import annotations

import html as _html
import json
import shutil
import subprocess
from dataclasses import dataclass, field

from ..blueprint.expand import INPUT
from ..errors import VitdslError
from .rows import fold, representatives, rule_rows

FORMATS = ("mermaid", "dot", "svg", "html")
NO_GRAPHVIZ = ("--format svg needs Graphviz's 'dot' program, which is not installed (or not on PATH)")
NO_GRAPHVIZ_HINT = ("install Graphviz: 'apt install graphviz' (Debian, Ubuntu), 'brew install graphviz' (macOS) "
                    "or 'conda install graphviz'; or write '--format dot' and lay it out elsewhere, or "
                    "'--format mermaid' / '--format html'")


@dataclass
class Box:
    """One block (or the input, or an output) as drawn: ``lines`` are its name, what it is, its shape."""

    id: str
    lines: list[str]
    end: bool = False  # the network's input or an output


@dataclass
class Frame:
    """A repeat's iterations drawn once: ``label`` says which and how many."""

    id: str
    label: str
    members: list = field(default_factory=list)  # Box or Frame


@dataclass
class Picture:
    title: str
    members: list  # Box or Frame, in execution order
    edges: list[tuple[str, str]]

    @property
    def boxes(self) -> list[Box]:
        out, todo = [], list(self.members)
        while todo:
            m = todo.pop(0)
            if isinstance(m, Box):
                out.append(m)
            else:
                todo[:0] = m.members
        return out


def picture(graph, title: str, folded: bool = True) -> Picture:
    """The picture of a checked graph (``vitdsl.validate``): repeats folded unless ``folded`` is false, when
    every iteration gets its own frame."""
    rows = rule_rows(graph)
    items = fold(rows, merge=folded)
    reps = representatives(rows, items)
    ids = {INPUT: "input"}
    frames = [0]

    def walk(items, prefix: str) -> list:
        members: list = []
        for item in items:
            if isinstance(item, tuple):
                _, rp, first, last, inner = item
                count = last - first + 1
                name = rp.removeprefix(prefix)
                label = f"{name}.{first}" if count == 1 else f"{name}.{first}–{last}  ×{count}, identical"
                frames[0] += 1
                members.append(Frame(f"r{frames[0]}", label, walk(inner, f"{rp}.{first}.")))
                continue
            ids[item.path] = f"n{len(ids)}"
            name = item.path.removeprefix(prefix)
            said = name.rpartition(".")[2].replace("_", "-") == item.block  # 'norm' is a norm: say it once
            pattern = item.pattern or _short(graph.nx.nodes[item.path]["node"].spec)
            what = [pattern] if said else [item.block + (f": {pattern}" if pattern else "")]
            members.append(Box(ids[item.path], [name, *filter(None, what), str(graph.shape(item.path))]))
        return members

    members = [Box("input", ["input", str(graph.input)], end=True), *walk(items, "")]
    edges: list[tuple[str, str]] = []

    def link(u: str, v: str) -> None:
        (ru, within_u), (rv, within_v) = reps.get(u, (u, ())), reps[v]
        runs = dict(within_u)
        if any(run in runs and runs[run] != k for run, k in within_v):
            return  # one iteration feeding the next: the frame's ×N says it
        edge = (ids[ru], ids[rv])
        if edge not in edges:
            edges.append(edge)

    for path in graph.order:
        for src in graph.nx.nodes[path]["node"].inputs:
            link(src, path)
    many = len(graph.output_paths) > 1
    for i, path in enumerate(graph.output_paths):
        out = f"output{i}" if many else "output"
        members.append(Box(out, [f"output {i}" if many else "output", str(graph.shape(path))], end=True))
        edges.append((ids[reps[path][0]], out))
    return Picture(title, members, edges)


def _short(spec) -> str:
    """The value of a block's shorthand field when it is a word ('add' for a merge, 'layer' for a norm): what
    the blueprint would write after the block's name."""
    value = getattr(spec, spec.shorthand, None) if isinstance(getattr(spec, "shorthand", None), str) else None
    return value if isinstance(value, str) else ""


def _mermaid_text(text: str) -> str:
    """Text inside a quoted Mermaid label: its own quotes and markup written as entity codes."""
    codes = {"#": "#35;", '"': "#quot;", "<": "#lt;", ">": "#gt;", "&": "#amp;"}
    return "".join(codes.get(c, c) for c in text)


def mermaid(p: Picture) -> str:
    lines = ["---", f"title: {json.dumps(p.title, ensure_ascii=False)}", "---", "flowchart TB"]

    def emit(members, pad: str) -> None:
        for m in members:
            if isinstance(m, Frame):
                lines.append(f'{pad}subgraph {m.id}["{_mermaid_text(m.label)}"]')
                lines.append(f"{pad}  direction TB")
                emit(m.members, pad + "  ")
                lines.append(f"{pad}end")
                continue
            head, *rest = map(_mermaid_text, m.lines)
            label = "<br/>".join([f"<b>{head}</b>", *rest])
            lines.append(f'{pad}{m.id}(["{label}"])' if m.end else f'{pad}{m.id}["{label}"]')

    emit(p.members, "  ")
    lines += [f"  {u} --> {v}" for u, v in p.edges]
    return "\n".join(lines) + "\n"


def dot(p: Picture) -> str:
    esc = _html.escape
    lines = [f"digraph {json.dumps(p.title, ensure_ascii=False)} {{",
             f'  graph [label={json.dumps(p.title, ensure_ascii=False)}, labelloc=t, fontname="Helvetica", '
             'fontsize=14, rankdir=TB, nodesep=0.3, ranksep=0.35];',
             '  node [shape=box, style="rounded,filled", fillcolor="#f4f6fb", color="#5b6b8c", '
             'fontname="Helvetica", fontsize=10];',
             '  edge [color="#5b6b8c", arrowsize=0.7];']

    def emit(members, pad: str) -> None:
        for m in members:
            if isinstance(m, Frame):
                lines.append(f"{pad}subgraph cluster_{m.id} {{")
                lines.append(f'{pad}  label=<<b>{esc(m.label)}</b>>; labeljust=l; style="rounded,dashed"; '
                             'color="#8a94a8"; fontname="Helvetica"; fontsize=10;')
                emit(m.members, pad + "  ")
                lines.append(f"{pad}}}")
                continue
            head, *rest = (esc(s) for s in m.lines)
            shape = [f'<font color="#4a5a78">{s}</font>' for s in rest[-1:]]
            label = "<br/>".join([f"<b>{head}</b>", *rest[:-1], *shape])
            extra = ', shape=oval, fillcolor="#e3ecd9"' if m.end else ""
            lines.append(f"{pad}{m.id} [label=<{label}>{extra}];")

    emit(p.members, "  ")
    lines += [f"  {u} -> {v};" for u, v in p.edges]
    return "\n".join(lines) + "\n}\n"


def svg(p: Picture) -> str:
    """The DOT text laid out by Graphviz (``dot -Tsvg``)."""
    exe = shutil.which("dot")
    if exe is None:
        raise VitdslError(NO_GRAPHVIZ, hint=NO_GRAPHVIZ_HINT)
    done = subprocess.run([exe, "-Tsvg"], input=dot(p), capture_output=True, text=True, encoding="utf-8")
    if done.returncode != 0:
        raise VitdslError(f"Graphviz's dot could not lay out the picture: {done.stderr.strip()[:300]}")
    return done.stdout


PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}</title>
<style>body {{ font-family: sans-serif; margin: 1.5em; }} .note {{ color: #555; font-size: 0.9em; }}</style>
</head>
<body>
<h1>{title}</h1>
<p class="note">Drawn by mermaid.js, which this page loads from the jsDelivr CDN when it opens. Offline, the
Mermaid text below stays as it is: paste it into any Mermaid viewer, or draw the picture without a network with
<code>vitdsl graph ... --format svg</code> (needs Graphviz).</p>
<pre class="mermaid">
{mermaid}</pre>
<script type="module">
import mermaid from "https://cdn.jsdelivr.net/npm/mermaid@11/dist/mermaid.esm.min.mjs";
mermaid.initialize({{ startOnLoad: true, securityLevel: "strict", flowchart: {{ htmlLabels: true }} }});
</script>
</body>
</html>
"""


def page(p: Picture) -> str:
    """A self-contained HTML page around the Mermaid text (the drawing library comes from a CDN)."""
    return PAGE.format(title=_html.escape(p.title), mermaid=_html.escape(mermaid(p)))


def draw(graph, fmt: str, title: str, folded: bool = True) -> str:
    """The picture of a checked graph in one of ``FORMATS``."""
    render = {"mermaid": mermaid, "dot": dot, "svg": svg, "html": page}.get(fmt)
    if render is None:
        raise VitdslError(f"unknown picture format '{fmt}'", hint=f"one of {', '.join(FORMATS)}")
    return render(picture(graph, title, folded))
